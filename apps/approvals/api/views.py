"""REST endpoints for promotions and gate policies (shared/API.md, "Promotions, gate policies").

Each view validates, calls one service or `_for` selector and serializes. The services decide
separation of duties (403), state conflicts (409) and the stale evidence digest (409); a request
or policy the caller may not see is 404.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import stepup
from apps.approvals import selectors, services
from apps.approvals.api import serializers as s
from apps.catalog.selectors import model_for, version_for
from apps.core.api.validation import validated, validated_query

ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    403: OpenApiResponse(description="visible but not allowed (separation of duties, not an approver, role)"),
    404: OpenApiResponse(description="not found or not visible"),
}
CONFLICT = {409: OpenApiResponse(description="not allowed in the request's current state")}


def _detail(request, pk) -> Response:
    return Response(s.PromotionDetailSerializer(selectors.promotion_for(request.user, pk)).data)


class PromotionListView(generics.ListAPIView):
    serializer_class = s.PromotionSerializer

    def get_queryset(self):
        filters = validated_query(s.PromotionFiltersSerializer, self.request.query_params)
        return selectors.promotions_visible(self.request.user, filters)

    @extend_schema(parameters=[s.PromotionFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.PromotionCreateSerializer, responses={201: s.PromotionDetailSerializer, **ERRORS, **CONFLICT}
    )
    def post(self, request):
        data = validated(s.PromotionCreateSerializer, request.data)
        version = version_for(request.user, data["model"], data["version"])
        promotion = services.promotion_request(
            actor=request.user,
            version=version,
            target_alias=data["target_alias"],
            justification=data["justification"],
            change=data.get("change") or {},
        )
        body = s.PromotionDetailSerializer(selectors.promotion_for(request.user, promotion.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)


class PromotionDetailView(APIView):
    @extend_schema(responses={200: s.PromotionDetailSerializer, **ERRORS})
    def get(self, request, pk):
        return _detail(request, pk)


class PromotionEvidenceView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
        description="Candidate against the version behind the alias (metrics with deltas), checks with their "
        "evidence, model card summary, change record, lineage, decisions, history and the evidence_digest "
        "to send with a decision.",
    )
    def get(self, request, pk):
        return Response(selectors.evidence_for(selectors.promotion_for(request.user, pk)))


class _DecisionView(APIView):
    decision = ""

    def post(self, request, pk):
        data = validated(s.DecisionCreateSerializer, request.data)
        promotion = selectors.promotion_for(request.user, pk)
        stepup.require_step_up_api(request, data.get("otp"), action="promotion.decide")  # 403 step_up_required
        services.promotion_decide(
            actor=request.user,
            promotion=promotion,
            decision=self.decision,
            comment=data.get("comment", ""),
            evidence_digest=data["evidence_digest"],
        )
        return _detail(request, pk)


class PromotionApproveView(_DecisionView):
    decision = "approve"

    @extend_schema(
        request=s.DecisionCreateSerializer,
        responses={200: s.PromotionDetailSerializer, **ERRORS, **CONFLICT},
        description="Approve with the evidence_digest you saw; the last approval moves the alias. Approvers "
        "(users who must have two-factor sign-in) send a current TOTP code as `X-OTP` or `otp`, else 403 "
        "with code `step_up_required`.",
    )
    def post(self, request, pk):
        return super().post(request, pk)


class PromotionRejectView(_DecisionView):
    decision = "reject"

    @extend_schema(
        request=s.DecisionCreateSerializer,
        responses={200: s.PromotionDetailSerializer, **ERRORS, **CONFLICT},
        description="Reject (comment required); any rejection ends the request.",
    )
    def post(self, request, pk):
        return super().post(request, pk)


class PromotionWithdrawView(APIView):
    @extend_schema(request=None, responses={200: s.PromotionDetailSerializer, **ERRORS, **CONFLICT})
    def post(self, request, pk):
        promotion = selectors.promotion_for(request.user, pk)
        services.promotion_withdraw(actor=request.user, promotion=promotion)
        return _detail(request, pk)


class PromotionRollbackView(APIView):
    @extend_schema(request=s.RollbackSerializer, responses={200: s.PromotionDetailSerializer, **ERRORS, **CONFLICT})
    def post(self, request, pk):
        data = validated(s.RollbackSerializer, request.data)
        promotion = selectors.promotion_for(request.user, pk)
        services.promotion_rollback(actor=request.user, promotion=promotion, comment=data["comment"])
        return _detail(request, pk)


# --- gate policies ---------------------------------------------------------------------------------


class GatePolicyListView(generics.ListAPIView):
    serializer_class = s.GatePolicySerializer

    def get_queryset(self):
        filters = validated_query(s.GatePolicyFiltersSerializer, self.request.query_params)
        return selectors.policies_visible(self.request.user, filters)

    @extend_schema(parameters=[s.GatePolicyFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.GatePolicyCreateSerializer, responses={201: s.GatePolicySerializer, **ERRORS})
    def post(self, request):
        data = validated(s.GatePolicyCreateSerializer, request.data)
        name = data.pop("model", None)
        model = model_for(request.user, name) if name else None
        policy = services.policy_create(actor=request.user, model=model, **data)
        return Response(s.GatePolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class GatePolicyDetailView(APIView):
    @extend_schema(responses={200: s.GatePolicySerializer, **ERRORS})
    def get(self, request, pk):
        return Response(s.GatePolicySerializer(selectors.gate_policy_for(request.user, pk)).data)

    @extend_schema(request=s.GatePolicyWriteSerializer, responses={200: s.GatePolicySerializer, **ERRORS})
    def patch(self, request, pk):
        data = validated(s.GatePolicyWriteSerializer, request.data, partial=True)
        policy = services.policy_update(actor=request.user, policy=selectors.gate_policy_for(request.user, pk), **data)
        return Response(s.GatePolicySerializer(policy).data)

    @extend_schema(responses={204: None, **ERRORS, **CONFLICT})
    def delete(self, request, pk):
        services.policy_delete(actor=request.user, policy=selectors.gate_policy_for(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
