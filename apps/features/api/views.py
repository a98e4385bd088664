"""REST endpoints for entities, feature views, the stores and training sets (paths in API.md).

Each view validates with `validated` / `validated_query`, calls one selector or service and
serializes. `PortalPermission` (the default) checks sign-in and the token scope (`required_scope`
where a route takes its own); the `_for` selectors and the services check object permissions.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from apps.core.api.sharing import SharingView
from apps.core.api.validation import validated, validated_query
from apps.features import selectors, services, training_sets
from apps.features.api import serializers as s
from apps.features.forms import SHARE_GRANTS
from apps.features.reader import read_sync

ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    403: OpenApiResponse(description="not allowed (or data in another region)"),
    404: OpenApiResponse(description="not found or not visible"),
}


class RawBodyParser(BaseParser):
    """CSV or Parquet request bodies, handed to the service as bytes."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream is not None else b""


def _payload(request):
    """JSON rows, a multipart `file`, or a raw CSV/Parquet body -> (data, format hint)."""
    data = request.data
    if isinstance(data, bytes | bytearray):
        ctype = (request.content_type or "").lower()
        return bytes(data), "parquet" if "parquet" in ctype else ("csv" if "csv" in ctype else None)
    if hasattr(data, "getlist") and "file" in getattr(request, "FILES", {}):
        upload = request.FILES["file"]
        name = upload.name.lower()
        return upload.read(), "parquet" if name.endswith(".parquet") else ("csv" if name.endswith(".csv") else None)
    if isinstance(data, list | dict):
        return data, None
    raise ValidationError({"rows": ["Send JSON rows, a CSV or Parquet body, or a multipart 'file'."]})


class EntityListView(generics.ListAPIView):
    serializer_class = s.EntitySerializer

    def get_queryset(self):
        return selectors.entities_visible(self.request.user, {})

    @extend_schema(request=s.EntityCreateSerializer, responses={201: s.EntitySerializer, **ERRORS})
    def post(self, request):
        entity = services.entity_create(actor=request.user, **validated(s.EntityCreateSerializer, request.data))
        return Response(s.EntitySerializer(entity).data, status=status.HTTP_201_CREATED)


class EntityDetailView(APIView):
    @extend_schema(responses={200: s.EntitySerializer, **ERRORS})
    def get(self, request, name):
        return Response(s.EntitySerializer(selectors.entity_for(request.user, name)).data)


@extend_schema(parameters=[s.FeatureViewFiltersSerializer])
class FeatureViewListView(generics.ListAPIView):
    serializer_class = s.FeatureViewSerializer

    def get_queryset(self):
        filters = validated_query(s.FeatureViewFiltersSerializer, self.request.query_params)
        return selectors.feature_views_visible(self.request.user, filters)

    @extend_schema(request=s.FeatureViewCreateSerializer, responses={201: s.FeatureViewDetailSerializer, **ERRORS})
    def post(self, request):
        data = validated(s.FeatureViewCreateSerializer, request.data)
        entity = selectors.entity_for(request.user, data.pop("entity"))
        view = services.feature_view_create(actor=request.user, entity=entity, **data)
        body = s.FeatureViewDetailSerializer(view, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class FeatureViewDetailView(APIView):
    @extend_schema(responses={200: s.FeatureViewDetailSerializer, **ERRORS})
    def get(self, request, name):
        view = selectors.feature_view_for(request.user, name)
        return Response(s.FeatureViewDetailSerializer(view, context={"request": request}).data)

    @extend_schema(request=s.FeatureViewUpdateSerializer, responses={200: s.FeatureViewDetailSerializer, **ERRORS})
    def patch(self, request, name):
        view = selectors.feature_view_for(request.user, name)
        changes = validated(s.FeatureViewUpdateSerializer, request.data, partial=True)
        view = services.feature_view_update(view=view, actor=request.user, **changes)
        return Response(s.FeatureViewDetailSerializer(view, context={"request": request}).data)


class FeatureViewSharingView(SharingView):
    """Feature views also offer the ``view_pii`` grant (only holders may hand it on)."""

    grants = SHARE_GRANTS


class IngestView(APIView):
    # the API's parsers (their limits on JSON included), then CSV or Parquet bytes
    parser_classes = [*api_settings.DEFAULT_PARSER_CLASSES, RawBodyParser]

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT, "text/csv": OpenApiTypes.BINARY,
                 "application/vnd.apache.parquet": OpenApiTypes.BINARY, "multipart/form-data": OpenApiTypes.OBJECT},
        responses={201: s.IngestResultSerializer, **ERRORS},
        description="Rows as a JSON list (or {\"rows\": [...]}), a CSV or Parquet body, or a multipart `file`. "
        "Validated against the view's schema; a bad file is refused whole with row numbers and nothing is written.",
    )  # fmt: skip
    def post(self, request, name):
        view = selectors.feature_view_for(request.user, name)
        data, fmt = _payload(request)
        result = services.feature_view_ingest(view=view, actor=request.user, data=data, fmt=fmt, request=request)
        return Response(result, status=status.HTTP_201_CREATED)


class PushView(APIView):
    required_scope = ("features", "write")

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: s.PushResultSerializer, **ERRORS},
                   description="JSON rows straight into the online store, logged to the offline store.")  # fmt: skip
    def post(self, request, name):
        view = selectors.feature_view_for(request.user, name)
        if not isinstance(request.data, list | dict):
            raise ValidationError({"rows": ["Send a JSON list of rows."]})
        return Response(services.feature_view_push(view=view, actor=request.user, data=request.data, request=request))


class MaterializeView(APIView):
    @extend_schema(request=s.MaterializeSerializer, responses={202: s.MaterializationJobSerializer, **ERRORS})
    def post(self, request, name):
        view = selectors.feature_view_for(request.user, name)
        data = validated(s.MaterializeSerializer, request.data)
        job = services.feature_view_materialize(view=view, actor=request.user, **data)
        return Response(s.MaterializationJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: s.MaterializationJobSerializer(many=True), **ERRORS})
    def get(self, request, name):
        view = selectors.feature_view_for(request.user, name)
        return Response(s.MaterializationJobSerializer(selectors.materializations_of(view), many=True).data)


class MaterializationCancelView(APIView):
    @extend_schema(
        request=None, responses={200: s.MaterializationJobSerializer, 409: OpenApiResponse(description="finished"),
                                 **ERRORS},
        description="A queued job ends at once; a running one stops at its next chunk (state `cancelled`). "
        "Owner and editors of the view.",
    )  # fmt: skip
    def post(self, request, name, pk):
        job = selectors.materialization_for(request.user, name, pk)
        job = services.materialization_cancel(job=job, actor=request.user)
        return Response(s.MaterializationJobSerializer(job).data)


class ApplyRetentionView(APIView):
    @extend_schema(
        request=None, responses={200: s.RetentionResultSerializer, **ERRORS},
        description="Delete the view's offline partitions and online values older than its retention_days now "
        "(also done daily). Owner and editors only; audited.",
    )  # fmt: skip
    def post(self, request, name):
        view = selectors.feature_view_for(request.user, name)
        result = services.feature_view_apply_retention(view=view, actor=request.user, request=request)
        return Response(s.RetentionResultSerializer(result).data)


class OnlineFeaturesView(APIView):
    """Also served by the lean ASGI path (apps.features.fastpath) with identical JSON."""

    required_scope = ("features", "read")

    @extend_schema(request=s.OnlineRequestSerializer, responses={200: s.OnlineResponseSerializer, **ERRORS})
    def post(self, request):
        return Response(read_sync(user=request.user, body=request.data, request=request))


class TrainingSetListView(generics.ListAPIView):
    serializer_class = s.TrainingSetSerializer

    def get_queryset(self):
        return selectors.training_sets_visible(self.request.user, {})

    @extend_schema(request={"application/json": s.TrainingSetCreateSerializer,
                            "multipart/form-data": s.TrainingSetCreateSerializer},
                   responses={201: s.TrainingSetSerializer, **ERRORS})  # fmt: skip
    def post(self, request):
        data = validated(s.TrainingSetCreateSerializer, request.data)
        upload = data.pop("entity_table", None)
        if upload is not None:
            data["entity_table"] = upload.read()
            data["fmt"] = "parquet" if upload.name.lower().endswith(".parquet") else None
        ts = training_sets.training_set_create(actor=request.user, request=request, **data)
        return Response(s.TrainingSetSerializer(ts).data, status=status.HTTP_201_CREATED)


class TrainingSetDetailView(APIView):
    @extend_schema(responses={200: s.TrainingSetSerializer, **ERRORS})
    def get(self, request, pk):
        return Response(s.TrainingSetSerializer(selectors.training_set_for(request.user, pk)).data)


class TrainingSetDataView(APIView):
    """The rows of a training set as a download (`format` picks the file type, not DRF's renderer)."""

    def perform_content_negotiation(self, request, force=False):
        # `?format=csv` names the download's type; errors are JSON whatever it says.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        parameters=[s.TrainingSetDataQuerySerializer],
        responses={
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
            # an array of row objects, one per label row
            (200, "application/json"): {"type": "array", "items": {"type": "object", "additionalProperties": True}},
            500: OpenApiResponse(description="the stored file failed its digest check; nothing was sent"),
            **ERRORS,
        },
        description="Streamed after a digest check of the stored file; audited. PII columns read `***` unless "
        "you may see the PII of the feature view they came from; `X-Masked-Columns` lists them.",
    )
    def get(self, request, pk):
        query = validated_query(s.TrainingSetDataQuerySerializer, request.query_params)
        ts = selectors.training_set_for(request.user, pk)
        export = training_sets.training_set_export(
            training_set=ts, actor=request.user, fmt=query["format"], request=request
        )
        response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        response["X-Masked-Columns"] = ",".join(export.masked)
        response["X-Row-Count"] = str(export.rows)
        return response
