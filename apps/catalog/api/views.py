"""REST endpoints for the catalog (paths in shared/API.md). Views stay thin: selectors read,
services write and check permissions; a stranger gets 404 everywhere."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.catalog import selectors, services
from apps.catalog.api import serializers as s
from apps.catalog.models import Alias
from apps.core import vault
from apps.core.errors import TooLarge

ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    404: OpenApiResponse(description="not found or not visible"),
}


class ArtifactIntegrityError(APIException):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "integrity_error"


@extend_schema(parameters=[OpenApiParameter(k, str, description=v) for k, v in selectors.LIST_FILTERS.items()])
class ModelListView(generics.ListCreateAPIView):
    serializer_class = s.RegisteredModelSerializer

    def get_queryset(self):
        return selectors.models_visible(self.request.user, self.request.query_params)

    @extend_schema(request=s.ModelCreateSerializer, responses={201: s.RegisteredModelDetailSerializer, **ERRORS})
    def post(self, request):
        data = _valid(s.ModelCreateSerializer, request.data)
        team = None
        if data.get("team"):
            team = Team.objects.filter(slug=data["team"]).first()
            if team is None:
                raise ValidationError({"team": [f"No team {data['team']!r}."]})
        model = services.model_create(
            actor=request.user, name=data["name"], description=data["description"], tags=data["tags"], team=team
        )
        body = s.RegisteredModelDetailSerializer(model, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ModelDetailView(APIView):
    @extend_schema(responses={200: s.RegisteredModelDetailSerializer, **ERRORS})
    def get(self, request, name):
        model = selectors.model_for(request.user, name)
        return Response(s.RegisteredModelDetailSerializer(model, context={"request": request}).data)

    @extend_schema(request=s.ModelUpdateSerializer, responses={200: s.RegisteredModelDetailSerializer, **ERRORS})
    def patch(self, request, name):
        model = selectors.model_for(request.user, name)
        data = _valid(s.ModelUpdateSerializer, request.data, partial=True)
        model = services.model_update(model=model, actor=request.user, **data)
        return Response(s.RegisteredModelDetailSerializer(model, context={"request": request}).data)

    @extend_schema(responses={200: s.RegisteredModelDetailSerializer, **ERRORS}, description="Archives the model.")
    def delete(self, request, name):
        model = selectors.model_for(request.user, name)
        model = services.model_archive(model=model, actor=request.user)
        return Response(s.RegisteredModelDetailSerializer(model, context={"request": request}).data)


class ModelCardView(APIView):
    @extend_schema(responses={200: s.ModelCardSerializer, **ERRORS})
    def get(self, request, name):
        model = selectors.model_for(request.user, name)
        return Response(s.ModelCardSerializer(model.card).data)

    @extend_schema(request=s.ModelCardSerializer, responses={200: s.ModelCardSerializer, **ERRORS})
    def patch(self, request, name):
        model = selectors.model_for(request.user, name)
        data = _valid(s.ModelCardSerializer, request.data, partial=True)
        card = services.card_update(model=model, actor=request.user, **data)
        return Response(s.ModelCardSerializer(card).data)

    put = patch


class ModelSharingView(APIView):
    """Share a model with a user or team as viewer or editor (owner or editors only)."""

    @extend_schema(request=s.ShareSerializer, responses={204: None, **ERRORS})
    def post(self, request, name):
        model, user, team, role = self._target(request, name)
        services.model_share(model=model, actor=request.user, role=role, user=user, team=team)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.ShareSerializer, responses={204: None, **ERRORS})
    def delete(self, request, name):
        model, user, team, _ = self._target(request, name)
        services.model_unshare(model=model, actor=request.user, user=user, team=team)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _target(self, request, name):
        model = selectors.model_for(request.user, name)
        data = _valid(s.ShareSerializer, request.data)
        user = team = None
        if data.get("user"):
            user = get_user_model().objects.filter(username=data["user"], is_active=True).first()
            if user is None:
                raise ValidationError({"user": [f"No active user {data['user']!r}."]})
        else:
            team = Team.objects.filter(slug=data["team"]).select_related("group").first()
            if team is None:
                raise ValidationError({"team": [f"No team {data['team']!r}."]})
        return model, user, team, data["role"]


class VersionListView(generics.ListAPIView):
    serializer_class = s.ModelVersionSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        return selectors.versions_of(selectors.model_for(self.request.user, self.kwargs["name"])).select_related(
            "model"
        )

    @extend_schema(
        request={"multipart/form-data": s.VersionUploadSerializer},
        responses={201: s.ModelVersionSerializer, 409: OpenApiResponse(description="model archived"),
                   413: OpenApiResponse(description="artifact over CATALOG_MAX_ARTIFACT_BYTES"), **ERRORS},
    )  # fmt: skip
    def post(self, request, name):
        model = selectors.model_for(request.user, name, "change")
        limit = services.max_artifact_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > 2 * limit + (1 << 20):  # refuse before reading the body
            raise TooLarge(f"The upload is {declared:,} bytes; each file may be at most {limit:,} bytes.")
        data = _valid(s.VersionUploadSerializer, request.data)
        lineage = dict(data["lineage"])
        for field in services.LINEAGE_FIELDS:
            if data.get(field) not in (None, ""):
                lineage[field] = data[field]
        artifact, weights = data["artifact"], data.get("state_dict")
        version = services.version_register(
            model=model,
            actor=request.user,
            artifact=artifact,
            artifact_size=artifact.size,
            state_dict=weights,
            state_dict_size=weights.size if weights is not None else None,
            description=data["description"],
            tags=data["tags"],
            metrics=data["metrics"],
            lineage=lineage,
            framework=data["framework"],
        )
        return Response(s.ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    @extend_schema(responses={200: s.ModelVersionSerializer, **ERRORS})
    def get(self, request, name, version):
        return Response(s.ModelVersionSerializer(selectors.version_for(request.user, name, version)).data)

    @extend_schema(
        request=s.VersionUpdateSerializer,
        responses={200: s.ModelVersionSerializer, 409: OpenApiResponse(description="immutable field"), **ERRORS},
    )
    def patch(self, request, name, version):
        found = selectors.version_for(request.user, name, version)
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": ["Send a JSON object."]})
        immutable = sorted(set(request.data) - {"description", "tags", "metrics"})
        if immutable:  # say why, rather than silently ignoring the fields
            services.version_update(version=found, actor=request.user, changes=dict.fromkeys(immutable))
        data = _valid(s.VersionUpdateSerializer, request.data, partial=True)
        found = services.version_update(version=found, actor=request.user, changes=data)
        return Response(s.ModelVersionSerializer(found).data)


class _DownloadView(APIView):
    which = "artifact"
    content_type = "application/octet-stream"

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request, name, version):
        found = selectors.version_for(request.user, name, version)
        try:
            chunks, size, filename = services.artifact_open(
                version=found, actor=request.user, which=self.which, request=request
            )
            # Pull the first chunk now: a small tampered artifact fails before any byte is sent.
            first = next(chunks, b"")
        except vault.VaultError as exc:
            raise ArtifactIntegrityError(
                f"The stored artifact failed its integrity check and was not sent ({exc}). "
                "It was changed in storage: restore it from backup or register the version again."
            ) from None
        body = itertools.chain([first], chunks) if first else iter(())
        response = vault.streaming_response(body, request=request, size=size, filename=filename,
                                            content_type=self.content_type)  # fmt: skip
        response["X-Content-SHA256"] = (found.artifact if self.which == "artifact" else found.state_dict).sha256
        return response


class ArtifactDownloadView(_DownloadView):
    """The ONNX artifact, decrypted while streaming. Audited as artifact.download."""


class StateDictDownloadView(_DownloadView):
    """The safetensors weights, when the version has them. Audited as artifact.download."""

    which = "state_dict"


class AliasListView(generics.ListAPIView):
    serializer_class = s.AliasSerializer

    def get_queryset(self):
        model = selectors.model_for(self.request.user, self.kwargs["name"])
        return Alias.objects.filter(model=model).select_related("model", "version", "moved_by").order_by("name")


class AliasDetailView(APIView):
    @extend_schema(responses={200: s.AliasSerializer, **ERRORS})
    def get(self, request, name, alias):
        return Response(s.AliasSerializer(selectors.alias_for(request.user, name, alias)).data)

    @extend_schema(
        request=s.AliasMoveSerializer,
        responses={200: s.AliasSerializer, 409: OpenApiResponse(description="protected alias"), **ERRORS},
        description="Move (or create) an unprotected alias. Protected aliases move only through promotions.",
    )
    def put(self, request, name, alias):
        model = selectors.model_for(request.user, name)
        data = _valid(s.AliasMoveSerializer, request.data)
        version = selectors.version_for(request.user, name, data["version"])
        moved = services.alias_move(
            model=model, alias=alias, version=version, actor=request.user, protected=data.get("protected")
        )
        return Response(s.AliasSerializer(moved).data)

    @extend_schema(
        request=s.AliasProtectionSerializer,
        responses={200: s.AliasSerializer, **ERRORS},
        description="Protect an alias (editors) or lift the protection (owner only).",
    )
    def patch(self, request, name, alias):
        model = selectors.model_for(request.user, name)
        data = _valid(s.AliasProtectionSerializer, request.data)
        found = services.alias_set_protection(model=model, alias=alias, protected=data["protected"], actor=request.user)
        return Response(s.AliasSerializer(found).data)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="protected alias"), **ERRORS})
    def delete(self, request, name, alias):
        model = selectors.model_for(request.user, name)
        selectors.alias_for(request.user, name, alias)
        services.alias_delete(model=model, alias=alias, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _valid(serializer_class, data, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
