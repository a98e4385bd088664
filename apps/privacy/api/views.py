"""REST API of data-subject requests (platform admins; everyone else gets 404). Keys travel in
POST bodies only. Views validate, call one service or selector and serialize."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.validation import validated
from apps.privacy import selectors, services
from apps.privacy.api import serializers as s

HIDDEN = {404: OpenApiResponse(description="not found, or the caller is not a platform admin")}
INVALID = {400: OpenApiResponse(description="invalid input, with field errors")}


def _subject(data: dict) -> dict:
    return {"key": data["key"], "entity": data.get("entity") or None}


class AccessView(APIView):
    @extend_schema(
        request=s.SubjectSerializer, responses={200: s.AccessReportSerializer, **INVALID, **HIDDEN},
        description="Every place the key's data lives, with counts (audited as subject.accessed, without the key).",
    )  # fmt: skip
    def post(self, request):
        selectors.require_admin(request.user)
        data = validated(s.SubjectSerializer, request.data)
        return Response(services.subject_access(actor=request.user, **_subject(data), request=request))


class ErasureListView(generics.ListAPIView):
    serializer_class = s.ErasureSerializer

    def get_queryset(self):
        return selectors.erasures_visible(self.request.user)

    @extend_schema(
        request=s.SubjectSerializer, responses={202: s.ErasureSerializer, **INVALID, **HIDDEN},
        description="Queue the key's erasure everywhere (a job on the default queue); poll the erasure for progress.",
    )  # fmt: skip
    def post(self, request):
        selectors.require_admin(request.user)
        data = validated(s.SubjectSerializer, request.data)
        certificate = services.erasure_request(actor=request.user, **_subject(data), request=request)
        return Response(s.ErasureSerializer(certificate).data, status=status.HTTP_202_ACCEPTED)


class ErasureDetailView(APIView):
    @extend_schema(responses={200: s.ErasureSerializer, **HIDDEN})
    def get(self, request, pk):
        return Response(s.ErasureSerializer(selectors.erasure_for(request.user, pk)).data)


class ErasureCertificateView(APIView):
    @extend_schema(
        responses={(200, "application/json"): OpenApiResponse(description="the certificate (a JSON file)"), **HIDDEN}
    )
    def get(self, request, pk):
        certificate = selectors.erasure_for(request.user, pk)
        body = services.certificate_download(actor=request.user, certificate=certificate, request=request)
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="erasure-certificate-{certificate.pk}.json"'
        return response
