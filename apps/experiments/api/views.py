"""REST API for experiments and runs (paths in API.md). Views stay thin: services write, selectors read."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import APIException
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.core import vault
from apps.core.errors import TooLarge
from apps.experiments import selectors, services
from apps.experiments.api import serializers as s
from apps.experiments.downsample import METHODS
from apps.experiments.filters import FilterError
from apps.experiments.models import Run
from apps.experiments.validation import check_key

MAX_LOG_BATCH_BYTES = 4 * 1024 * 1024
MAX_SERIES_MAX_POINTS = 100_000
MAX_LOG_APPEND_BYTES = 64 * 1024  # of text per call (UTF-8)
MAX_LOG_APPEND_BODY = 1024 * 1024  # JSON escaping may inflate the text up to 6 times
MULTIPART_OVERHEAD = 1 << 20
ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    403: OpenApiResponse(description="visible, but the experiment may not be changed"),
    404: OpenApiResponse(description="not found or not visible"),
}


class ArtifactIntegrityError(APIException):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "integrity_error"


def _int_param(request, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiValidationError({name: [f"{name} must be a whole number."]}) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiValidationError({name: [f"{name} must be {bounds}."]})
    return value


class ExperimentListView(generics.ListAPIView):
    serializer_class = s.ExperimentSerializer

    def get_queryset(self):
        experiments = selectors.experiment_list(self.request.user)
        name = self.request.query_params.get("name")
        return experiments.filter(name=name) if name else experiments

    @extend_schema(parameters=[OpenApiParameter("name", str, description="exact experiment name")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.ExperimentCreateSerializer, responses={201: s.ExperimentSerializer})
    def post(self, request):
        data = s.ExperimentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = None
        if data.validated_data["team"]:
            team = Team.objects.filter(slug=data.validated_data["team"], group__user=request.user).first()
            if team is None:
                raise ApiValidationError({"team": ["You are not a member of a team with that slug."]})
        experiment = services.experiment_create(
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            tags=data.validated_data["tags"],
            team=team,
            actor=request.user,
        )
        return Response(s.ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailView(APIView):
    @extend_schema(responses=s.ExperimentSerializer)
    def get(self, request, pk):
        return Response(s.ExperimentSerializer(selectors.get_experiment(request.user, pk)).data)

    @extend_schema(request=s.ExperimentUpdateSerializer, responses=s.ExperimentSerializer)
    def patch(self, request, pk):
        experiment = selectors.get_experiment(request.user, pk, "change")
        data = s.ExperimentUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.experiment_update(experiment=experiment, actor=request.user, **data.validated_data)
        return Response(s.ExperimentSerializer(experiment).data)


RUN_LIST_PARAMETERS = [
    OpenApiParameter("experiment", int, description="experiment id"),
    OpenApiParameter("status", str, enum=[c for c, _ in Run.Status.choices]),
    OpenApiParameter("filter", str, description="e.g. metrics.val_acc > 0.9 and params.lr < 0.01"),
    OpenApiParameter("order_by", str, description="e.g. -metrics.val_acc, params.lr, name, -created_at"),
]


class RunListView(generics.ListAPIView):
    serializer_class = s.RunSerializer

    def get_queryset(self):
        """Ids of the visible, matching runs in order (the page's rows are loaded in `list`)."""
        params = self.request.query_params
        experiment = _int_param(self.request, "experiment", minimum=1)
        if experiment is not None:
            base = Run.objects.filter(experiment=selectors.get_experiment(self.request.user, experiment))
        else:
            base = selectors.visible_runs(self.request.user)
        try:
            sort = selectors.validate_sort(params.get("order_by", ""))
        except FilterError as exc:
            raise ApiValidationError({"order_by": [str(exc)]}) from None
        query = selectors.RunQuery(filter=params.get("filter", ""), sort=sort, status=params.get("status", ""))
        try:
            return selectors.run_ids(base, query)
        except FilterError as exc:
            raise ApiValidationError({"filter": [str(exc)]}) from None

    def list(self, request, *args, **kwargs):
        ids = self.paginate_queryset(self.get_queryset())
        runs = selectors.runs_in_order(ids)
        summaries = selectors.summaries_for([r.pk for r in runs])
        data = s.RunSerializer(runs, many=True, context={"summaries": summaries}).data
        return self.get_paginated_response(data)

    @extend_schema(parameters=RUN_LIST_PARAMETERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.RunCreateSerializer, responses={201: s.RunSerializer})
    def post(self, request):
        data = s.RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        experiment = selectors.get_experiment(request.user, values.pop("experiment"))
        run = services.run_create(experiment=experiment, actor=request.user, **values)
        return Response(s.RunSerializer(run, context={"summaries": {run.pk: {}}}).data, status=status.HTTP_201_CREATED)


class RunDetailView(APIView):
    @extend_schema(responses=s.RunSerializer)
    def get(self, request, pk):
        return Response(s.RunSerializer(selectors.get_run(request.user, pk)).data)

    @extend_schema(request=s.RunUpdateSerializer, responses=s.RunSerializer)
    def patch(self, request, pk):
        run = selectors.get_run(request.user, pk, "change")
        data = s.RunUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        with transaction.atomic():
            services.run_update(run=run, name=values.get("name"), notes=values.get("notes"))
            if "status" in values or "progress" in values:
                services.run_set_status(run=run, status=values.get("status"), progress=values.get("progress"))
        return Response(s.RunSerializer(run).data)


class RunLogBatchView(APIView):
    """Up to 1,000 metric points, 100 params and 100 tags, validated and written in one transaction."""

    @extend_schema(request=s.LogBatchSerializer, responses=s.LogBatchResultSerializer)
    def post(self, request, pk):
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_LOG_BATCH_BYTES:
            raise TooLarge(
                f"A log-batch body may be at most {MAX_LOG_BATCH_BYTES // (1024 * 1024)} MiB; split it."
            )
        run = selectors.get_run(request.user, pk, "change")
        body = request.data
        if not isinstance(body, dict):
            raise ApiValidationError({"detail": ["Send a JSON object with metrics, params and/or tags."]})
        unknown = set(body) - {"metrics", "params", "tags"}
        if unknown:
            raise ApiValidationError({"detail": [f"Unknown field(s): {', '.join(sorted(unknown))}."]})
        result = services.run_log_batch(
            run=run, metrics=body.get("metrics"), params=body.get("params"), tags=body.get("tags")
        )
        return Response(result)


class RunMetricKeysView(APIView):
    @extend_schema(responses=s.MetricSummarySerializer(many=True))
    def get(self, request, pk):
        run = selectors.get_run(request.user, pk)
        rows = selectors.summaries_for([run.pk])[run.pk].values()
        return Response(s.MetricSummarySerializer(sorted(rows, key=lambda r: r.key), many=True).data)


class RunMetricSeriesView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("max_points", int, description="downsample to at most this many points (4..100000)"),
            OpenApiParameter("method", str, enum=list(METHODS), description="minmax (default) or lttb"),
            OpenApiParameter("after_step", int, description="only points after this step (catch-up)"),
        ],
        responses=s.SeriesSerializer,
    )
    def get(self, request, pk, key):
        run = selectors.get_run(request.user, pk)
        problem = check_key(key)
        if problem:
            raise ApiValidationError({"key": [problem]})
        max_points = _int_param(request, "max_points", minimum=4, maximum=MAX_SERIES_MAX_POINTS)
        after_step = _int_param(request, "after_step", minimum=-1)
        method = request.query_params.get("method") or "minmax"
        if method not in METHODS:
            raise ApiValidationError({"method": [f"Use one of {', '.join(METHODS)}."]})
        return Response(selectors.metric_series(run, key, max_points=max_points, method=method, after_step=after_step))


class RunLogAppendView(APIView):
    """Append output to the run's log tail (the last 64 KiB are kept); streamed to open run pages."""

    @extend_schema(request=s.LogAppendSerializer, responses={204: None, 413: OpenApiResponse(), **ERRORS})
    def post(self, request, pk):
        run = selectors.get_run(request.user, pk, "change")
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_LOG_APPEND_BODY:
            raise TooLarge(f"A log body may be at most {MAX_LOG_APPEND_BODY // 1024} KiB; send less per call.")
        body = request.data
        if not isinstance(body, dict) or set(body) != {"text"}:
            raise ApiValidationError(
                {"detail": ['Send a JSON object with one field, e.g. {"text": "epoch 3 done\\n"}.']}
            )
        text = body["text"]
        if not isinstance(text, str) or not text:
            raise ApiValidationError({"text": ["text is a non-empty string."]})
        if len(text.encode("utf-8", "surrogatepass")) > MAX_LOG_APPEND_BYTES:
            raise ApiValidationError(
                {"text": [f"text may be at most {MAX_LOG_APPEND_BYTES // 1024} KiB per call; split it."]}
            )
        services.run_append_log(run=run, text=text)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunArtifactListView(generics.ListAPIView):
    """The run's artifacts (GET), or store a file as one (POST, multipart, encrypted in the vault)."""

    serializer_class = s.ArtifactSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.run_artifacts(selectors.get_run(self.request.user, self.kwargs["pk"]))

    @extend_schema(
        request={"multipart/form-data": s.ArtifactUploadSerializer},
        responses={201: s.ArtifactSerializer, 413: OpenApiResponse(description="over EXPERIMENTS_MAX_ARTIFACT_BYTES"),
                   **ERRORS},
        description="Store `file` at `path` (default: the file's name); an artifact already at that path is replaced.",
    )  # fmt: skip
    def post(self, request, pk):
        run = selectors.get_run(request.user, pk, "change")
        limit = services.max_artifact_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit + MULTIPART_OVERHEAD:  # refuse before reading the body
            raise TooLarge(f"The upload is {declared:,} bytes; an artifact may be at most {limit:,} bytes.")
        data = s.ArtifactUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        upload.seek(0)
        artifact = services.run_artifact_upload(
            run=run,
            actor=request.user,
            src=upload,
            size=upload.size,
            path=data.validated_data["path"] or upload.name,
        )
        return Response(
            s.ArtifactSerializer(artifact, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class RunArtifactDownloadView(APIView):
    """One artifact's bytes, decrypted while streaming. Audited as artifact.download."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request, pk, path):
        artifact = selectors.run_artifact(selectors.get_run(request.user, pk), path)
        try:
            chunks, size, filename = services.run_artifact_open(artifact=artifact, actor=request.user, request=request)
        except vault.VaultError as exc:
            raise ArtifactIntegrityError(
                f"The stored artifact failed its integrity check and was not sent ({exc}). "
                "It was changed in storage: restore it from backup or upload it again."
            ) from None
        response = vault.streaming_response(chunks, request=request, size=size, filename=filename)
        response["X-Content-SHA256"] = artifact.blob.sha256
        return response
