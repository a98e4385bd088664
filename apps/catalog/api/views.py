"""REST endpoints for the catalog (paths in shared/API.md).

Each view does three things: validate with `validated` / `validated_query`, call one service or
`_for` selector, serialize. Services check permissions and raise domain errors, which the API
exception handler maps; a stranger gets 404 everywhere. Sharing is `apps.core.api.sharing`.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog import selectors, services
from apps.catalog.api import serializers as s
from apps.core import vault
from apps.core.api.parsers import PortalJSONParser
from apps.core.api.validation import validated, validated_query
from apps.core.errors import TooLarge

ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    404: OpenApiResponse(description="not found or not visible"),
}
# Room for two files at the limit plus the multipart envelope and form fields.
UPLOAD_ENVELOPE_BYTES = 1 << 20


class ModelListView(generics.ListAPIView):
    serializer_class = s.RegisteredModelSerializer

    def get_queryset(self):  # rows, not a QuerySet: compiled once per shape (selectors.model_rows)
        filters = validated_query(s.ModelFiltersSerializer, self.request.query_params)
        return selectors.model_rows(self.request.user, filters)

    def paginate_queryset(self, queryset):
        return selectors.with_aliases(super().paginate_queryset(queryset))

    @extend_schema(parameters=[s.ModelFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.ModelCreateSerializer, responses={201: s.RegisteredModelDetailSerializer, **ERRORS})
    def post(self, request):
        model = services.model_create(actor=request.user, **validated(s.ModelCreateSerializer, request.data))
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
        model = services.model_update(
            model=model, actor=request.user, **validated(s.ModelUpdateSerializer, request.data, partial=True)
        )
        return Response(s.RegisteredModelDetailSerializer(model, context={"request": request}).data)

    @extend_schema(
        responses={204: None, **ERRORS},
        description="Archives the model: its versions stay readable, it takes no new versions.",
    )
    def delete(self, request, name):
        services.model_archive(model=selectors.model_for(request.user, name), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelCardView(APIView):
    @extend_schema(responses={200: s.ModelCardSerializer, **ERRORS})
    def get(self, request, name):
        return Response(s.ModelCardSerializer(selectors.model_for(request.user, name).card).data)

    @extend_schema(request=s.ModelCardSerializer, responses={200: s.ModelCardSerializer, **ERRORS})
    def patch(self, request, name):
        model = selectors.model_for(request.user, name)
        card = services.card_update(
            model=model, actor=request.user, **validated(s.ModelCardSerializer, request.data, partial=True)
        )
        return Response(s.ModelCardSerializer(card).data)

    put = patch


class VersionListView(generics.ListAPIView):
    serializer_class = s.ModelVersionSerializer
    parser_classes = [MultiPartParser, FormParser, PortalJSONParser]

    def get_queryset(self):
        return selectors.versions_of(selectors.model_for(self.request.user, self.kwargs["name"]))

    @extend_schema(
        request={"multipart/form-data": s.VersionUploadSerializer},
        responses={201: s.ModelVersionSerializer, 409: OpenApiResponse(description="model archived"),
                   413: OpenApiResponse(description="artifact over CATALOG_MAX_ARTIFACT_BYTES"), **ERRORS},
    )  # fmt: skip
    def post(self, request, name):
        model = selectors.model_for(request.user, name, "change")
        _refuse_oversized_body(request)
        data = validated(s.VersionUploadSerializer, request.data)
        artifact, weights = data.pop("artifact"), data.pop("state_dict", None)
        version = services.version_register(
            model=model,
            actor=request.user,
            artifact=artifact,
            artifact_size=artifact.size,
            state_dict=weights,
            state_dict_size=weights.size if weights is not None else None,
            **data,
        )
        return Response(s.ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)


def _refuse_oversized_body(request) -> None:
    """413 from the declared length alone, before the multipart body is read and spooled to disk."""
    limit = settings.CATALOG_MAX_ARTIFACT_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    declared = int(length) if length.isdigit() else 0
    if declared > 2 * limit + UPLOAD_ENVELOPE_BYTES:
        raise TooLarge(f"The upload is {declared:,} bytes; each file may be at most {limit:,} bytes.")


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
        changes = validated(s.VersionUpdateSerializer, request.data, partial=True)
        found = services.version_update(version=found, actor=request.user, changes=changes)
        return Response(s.ModelVersionSerializer(found).data)


class _DownloadView(APIView):
    which = "artifact"
    content_type = "application/octet-stream"

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request, name, version):
        found = selectors.version_for(request.user, name, version)
        chunks, size, filename = services.artifact_open(
            version=found, actor=request.user, which=self.which, request=request
        )
        response = vault.streaming_response(chunks, request=request, size=size, filename=filename,
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
        return selectors.aliases_of(selectors.model_for(self.request.user, self.kwargs["name"]))


class AliasDetailView(APIView):
    @extend_schema(responses={200: s.AliasSerializer, **ERRORS})
    def get(self, request, name, alias):
        return Response(s.AliasSerializer(selectors.alias_for(request.user, name, alias)).data)

    @extend_schema(
        request=s.AliasMoveSerializer,
        responses={200: s.AliasSerializer, 409: OpenApiResponse(description="protected alias"), **ERRORS},
        description="Move (or create) an alias. A protected alias moves only through an approved promotion "
        "(409 naming POST /api/v1/promotions/); new production and champion aliases start protected.",
    )
    def put(self, request, name, alias):
        data = validated(s.AliasMoveSerializer, request.data)
        version = selectors.version_for(request.user, name, data["version"])
        moved = services.alias_move(
            model=version.model, alias=alias, version=version, actor=request.user, protected=data.get("protected")
        )
        return Response(s.AliasSerializer(moved).data)

    @extend_schema(
        request=s.AliasProtectionSerializer,
        responses={200: s.AliasSerializer, **ERRORS},
        description="Protect an alias (editors) or lift the protection (platform admins only; 403 otherwise, audited).",
    )
    def patch(self, request, name, alias):
        model = selectors.model_for(request.user, name)
        data = validated(s.AliasProtectionSerializer, request.data)
        found = services.alias_set_protection(model=model, alias=alias, protected=data["protected"], actor=request.user)
        return Response(s.AliasSerializer(found).data)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="protected alias"), **ERRORS})
    def delete(self, request, name, alias):
        found = selectors.alias_for(request.user, name, alias)
        services.alias_delete(model=found.model, alias=found.name, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
