"""REST endpoints for entities, feature views, the stores and training sets (paths in API.md)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.features import selectors, services, training_sets
from apps.features.api import serializers as s
from apps.features.reader import BadRequest, read_sync

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


class ScopeAny(permissions.BasePermission):
    """Token callers need one of the view's `scopes_any` (session callers are not scope-limited)."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None or not hasattr(token, "scopes"):
            return True
        wanted = view.scopes_any
        if any(scope in token.scopes for scope in wanted):
            return True
        self.message = f"This token needs one of the scopes {', '.join(wanted)}; create one on your profile page."
        return False


def _valid(serializer_class, data, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _team(slug):
    if not slug:
        return None
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise ValidationError({"team": [f"No team {slug!r}."]})
    return team


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


@extend_schema(parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)])
class EntityListView(generics.ListAPIView):
    serializer_class = s.EntitySerializer

    def get_queryset(self):
        return selectors.entities_visible(self.request.user)

    @extend_schema(request=s.EntityCreateSerializer, responses={201: s.EntitySerializer, **ERRORS})
    def post(self, request):
        data = _valid(s.EntityCreateSerializer, request.data)
        entity = services.entity_create(
            actor=request.user, name=data["name"], join_keys=data["join_keys"], description=data["description"],
            team=_team(data.get("team")),
        )  # fmt: skip
        return Response(s.EntitySerializer(entity).data, status=status.HTTP_201_CREATED)


class EntityDetailView(APIView):
    @extend_schema(responses={200: s.EntitySerializer, **ERRORS})
    def get(self, request, name):
        return Response(s.EntitySerializer(selectors.entity_for(request.user, name)).data)


@extend_schema(parameters=[OpenApiParameter(k, str, description=v) for k, v in selectors.VIEW_FILTERS.items()])
class FeatureViewListView(generics.ListAPIView):
    serializer_class = s.FeatureViewSerializer

    def get_queryset(self):
        return selectors.views_visible(self.request.user, self.request.query_params)

    @extend_schema(request=s.FeatureViewCreateSerializer, responses={201: s.FeatureViewDetailSerializer, **ERRORS})
    def post(self, request):
        data = _valid(s.FeatureViewCreateSerializer, request.data)
        entity = selectors.entity_for(request.user, data["entity"])
        view = services.feature_view_create(
            actor=request.user, name=data["name"], entity=entity, features=data["features"],
            description=data["description"], tags=data["tags"],
            region=data["region"], ttl_seconds=data["ttl_seconds"], source=data["source"], team=_team(data.get("team")),
            retention_days=data.get("retention_days"),
        )  # fmt: skip
        body = s.FeatureViewDetailSerializer(view, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class FeatureViewDetailView(APIView):
    @extend_schema(responses={200: s.FeatureViewDetailSerializer, **ERRORS})
    def get(self, request, name):
        view = selectors.view_for(request.user, name)
        return Response(s.FeatureViewDetailSerializer(view, context={"request": request}).data)

    @extend_schema(request=s.FeatureViewUpdateSerializer, responses={200: s.FeatureViewDetailSerializer, **ERRORS})
    def patch(self, request, name):
        view = selectors.view_for(request.user, name)
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": ["Send a JSON object with the fields to change."]})
        valid = _valid(s.FeatureViewUpdateSerializer, request.data, partial=True)
        changes = dict(request.data)
        if "retention_days" in valid:
            changes["retention_days"] = valid["retention_days"]
        if "team" in changes:
            changes["team"] = _team(changes["team"])
        view = services.feature_view_update(view=view, actor=request.user, **changes)
        return Response(s.FeatureViewDetailSerializer(view, context={"request": request}).data)


class IngestView(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser, RawBodyParser]

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT, "text/csv": OpenApiTypes.BINARY,
                 "application/vnd.apache.parquet": OpenApiTypes.BINARY, "multipart/form-data": OpenApiTypes.OBJECT},
        responses={201: s.IngestResultSerializer, **ERRORS},
        description="Rows as a JSON list (or {\"rows\": [...]}), a CSV or Parquet body, or a multipart `file`. "
        "Validated against the view's schema; a bad file is refused whole with row numbers and nothing is written.",
    )  # fmt: skip
    def post(self, request, name):
        view = selectors.view_for(request.user, name)
        data, fmt = _payload(request)
        result = services.feature_view_ingest(view=view, actor=request.user, data=data, fmt=fmt, request=request)
        return Response(result, status=status.HTTP_201_CREATED)


class PushView(APIView):
    permission_classes = [permissions.IsAuthenticated, ScopeAny]
    scopes_any = ("features", "write")

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: s.PushResultSerializer, **ERRORS},
                   description="JSON rows straight into the online store, logged to the offline store.")  # fmt: skip
    def post(self, request, name):
        view = selectors.view_for(request.user, name)
        if not isinstance(request.data, list | dict):
            raise ValidationError({"rows": ["Send a JSON list of rows."]})
        return Response(services.feature_view_push(view=view, actor=request.user, data=request.data, request=request))


class MaterializeView(APIView):
    @extend_schema(request=s.MaterializeSerializer, responses={202: s.MaterializationJobSerializer, **ERRORS})
    def post(self, request, name):
        view = selectors.view_for(request.user, name)
        data = _valid(s.MaterializeSerializer, request.data)
        job = services.materialize_request(view=view, actor=request.user, start=data["start"], end=data["end"])
        return Response(s.MaterializationJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: s.MaterializationJobSerializer(many=True), **ERRORS})
    def get(self, request, name):
        view = selectors.view_for(request.user, name)
        return Response(s.MaterializationJobSerializer(selectors.jobs_of(view), many=True).data)


class ApplyRetentionView(APIView):
    @extend_schema(
        request=None, responses={200: s.RetentionResultSerializer, **ERRORS},
        description="Delete the view's offline partitions and online values older than its retention_days now "
        "(also done daily). Owner and editors only; audited.",
    )  # fmt: skip
    def post(self, request, name):
        view = selectors.view_for(request.user, name)
        result = services.feature_view_apply_retention(view=view, actor=request.user, request=request)
        return Response(s.RetentionResultSerializer(result).data)


class OnlineFeaturesView(APIView):
    """Also served by the lean ASGI path (apps.features.fastpath) with identical JSON."""

    permission_classes = [permissions.IsAuthenticated, ScopeAny]
    scopes_any = ("features", "read")

    @extend_schema(request=s.OnlineRequestSerializer, responses={200: s.OnlineResponseSerializer, **ERRORS})
    def post(self, request):
        try:
            return Response(read_sync(user=request.user, body=request.data, request=request))
        except BadRequest as exc:
            return Response({exc.field: [exc.detail]}, status=status.HTTP_400_BAD_REQUEST)


class TrainingSetListView(generics.ListAPIView):
    serializer_class = s.TrainingSetSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.training_sets_visible(self.request.user)

    @extend_schema(request={"application/json": s.TrainingSetCreateSerializer,
                            "multipart/form-data": s.TrainingSetCreateSerializer},
                   responses={201: s.TrainingSetSerializer, **ERRORS})  # fmt: skip
    def post(self, request):
        data = request.data
        features = data.get("features")
        if isinstance(features, str):
            features = [f.strip() for f in features.split(",") if f.strip()]
        upload = request.FILES.get("entity_table") if hasattr(request, "FILES") else None
        kwargs = {}
        if upload is not None:
            name = upload.name.lower()
            kwargs = {"entity_table": upload.read(), "fmt": "parquet" if name.endswith(".parquet") else None}
        elif data.get("entity_rows") is not None:
            kwargs = {"entity_rows": data.get("entity_rows")}
            if not isinstance(kwargs["entity_rows"], list):
                raise ValidationError({"entity_rows": ["Give a JSON list of rows."]})
        else:
            raise ValidationError({"entity_rows": ["Give entity_rows (JSON) or an entity_table file (CSV/Parquet)."]})
        ts = training_sets.training_set_create(
            actor=request.user, name=data.get("name"), features=features, request=request, **kwargs
        )
        return Response(s.TrainingSetSerializer(ts).data, status=status.HTTP_201_CREATED)


class TrainingSetDetailView(APIView):
    @extend_schema(responses={200: s.TrainingSetSerializer, **ERRORS})
    def get(self, request, pk):
        return Response(s.TrainingSetSerializer(selectors.training_set_for(request.user, pk)).data)
