"""REST API for experiments and runs (paths in shared/API.md).

Each view validates with `validated` / `validated_query`, calls one service or `_for` selector,
and serializes; services check permissions and raise domain errors (`apps.core.errors`), which
the API's exception handler maps. The only checks here are HTTP ones: a body's declared size is
refused before it is read.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import vault
from apps.core.api.sharing import SharingView
from apps.core.api.validation import validated, validated_query
from apps.core.errors import TooLarge
from apps.experiments import selectors, services
from apps.experiments.api import serializers as s

MAX_LOG_BATCH_BYTES = 4 * 1024 * 1024
MAX_LOG_APPEND_BODY = 1024 * 1024  # JSON escaping may inflate 64 KiB of text up to 6 times
MULTIPART_OVERHEAD = 1 << 20
ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    403: OpenApiResponse(description="visible, but the experiment may not be changed"),
    404: OpenApiResponse(description="not found or not visible"),
}


def _declared_length(request) -> int:
    """The body size the client declared (0 when absent or unreadable)."""
    length = request.META.get("CONTENT_LENGTH") or ""
    return int(length) if length.isdigit() else 0


class ExperimentListView(generics.ListAPIView):
    serializer_class = s.ExperimentSerializer

    def get_queryset(self):
        return selectors.experiments_visible(
            self.request.user, validated_query(s.ExperimentFiltersSerializer, self.request.query_params)
        )

    @extend_schema(parameters=[s.ExperimentFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.ExperimentCreateSerializer, responses={201: s.ExperimentSerializer})
    def post(self, request):
        experiment = services.experiment_create(
            actor=request.user, **validated(s.ExperimentCreateSerializer, request.data)
        )
        experiment.run_count = 0
        return Response(s.ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailView(APIView):
    @extend_schema(responses=s.ExperimentSerializer)
    def get(self, request, pk):
        return Response(s.ExperimentSerializer(selectors.experiment_for(request.user, pk)).data)

    @extend_schema(request=s.ExperimentUpdateSerializer, responses=s.ExperimentSerializer)
    def patch(self, request, pk):
        experiment = selectors.experiment_for(request.user, pk)
        values = validated(s.ExperimentUpdateSerializer, request.data, partial=True)
        services.experiment_update(experiment=experiment, actor=request.user, **values)
        return Response(s.ExperimentSerializer(experiment).data)


class RunSharingView(SharingView):
    """`runs/{id}/sharing` lists and changes the sharing of the run's **experiment**.

    Runs have no access list of their own: whoever may view an experiment may view all its runs,
    and whoever may change it may log to them (10,000 runs need no 30,000 permission rows). So
    sharing "this run" shares its experiment, exactly as `experiments/{id}/sharing` does; the
    answer is the same for every run of one experiment."""

    lookup = staticmethod(selectors.run_experiment_for)


class RunListView(generics.ListAPIView):
    serializer_class = s.RunSerializer

    def get_queryset(self):
        """Ids of the visible, matching runs in order (the page's rows are loaded in `list`)."""
        filters = validated_query(s.RunFiltersSerializer, self.request.query_params)
        if filters.get("experiment"):
            experiment = selectors.experiment_for(self.request.user, filters["experiment"])  # 404 when invisible
            return selectors.runs_of(experiment, filters)
        return selectors.runs_visible(self.request.user, filters)

    def list(self, request, *args, **kwargs):
        runs = selectors.runs_in_order(self.paginate_queryset(self.get_queryset()))
        return self.get_paginated_response(s.RunSerializer(runs, many=True, context=_run_context(request, runs)).data)

    @extend_schema(parameters=[s.RunFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.RunCreateSerializer, responses={201: s.RunSerializer})
    def post(self, request):
        values = validated(s.RunCreateSerializer, request.data)
        experiment = selectors.experiment_for(request.user, values.pop("experiment"))
        run = services.run_create(experiment=experiment, actor=request.user, **values)
        return Response(s.RunSerializer(run, context=_run_context(request, [run])).data, status=status.HTTP_201_CREATED)


def _run_context(request, runs) -> dict:
    """What RunSerializer reads for a page of runs, in two queries however many rows."""
    ids = [r.pk for r in runs]
    return {
        "summaries": selectors.summaries_of(ids),
        "model_versions": selectors.run_model_versions_visible(request.user, ids),
    }


class RunDetailView(APIView):
    @extend_schema(responses=s.RunSerializer)
    def get(self, request, pk):
        run = selectors.run_for(request.user, pk)
        return Response(s.RunSerializer(run, context=_run_context(request, [run])).data)

    @extend_schema(request=s.RunUpdateSerializer, responses=s.RunSerializer)
    def patch(self, request, pk):
        run = selectors.run_for(request.user, pk)
        values = validated(s.RunUpdateSerializer, request.data, partial=True)
        run = services.run_update(run=run, actor=request.user, **values)
        return Response(s.RunSerializer(run, context=_run_context(request, [run])).data)


class RunLogBatchView(APIView):
    """Up to 1,000 metric points, 100 params and 100 tags, validated and written in one transaction."""

    @extend_schema(request=s.LogBatchSerializer, responses={200: s.LogBatchResultSerializer, **ERRORS})
    def post(self, request, pk):
        if _declared_length(request) > MAX_LOG_BATCH_BYTES:
            raise TooLarge(f"A log-batch body may be at most {MAX_LOG_BATCH_BYTES // (1024 * 1024)} MiB; split it.")
        run = selectors.run_for(request.user, pk)
        body = validated(s.LogBatchInputSerializer, request.data)
        return Response(services.run_log_batch(run=run, actor=request.user, **body))


class RunMetricKeysView(APIView):
    @extend_schema(responses=s.MetricSummarySerializer(many=True))
    def get(self, request, pk):
        run = selectors.run_for(request.user, pk)
        return Response(s.MetricSummarySerializer(selectors.metrics_of(run), many=True).data)


class RunMetricSeriesView(APIView):
    @extend_schema(parameters=[s.SeriesQuerySerializer], responses=s.SeriesSerializer)
    def get(self, request, pk, key):
        run = selectors.run_for(request.user, pk)
        query = validated_query(s.SeriesQuerySerializer, request.query_params)
        return Response(selectors.series_of(run, key, **query))


class RunLogAppendView(APIView):
    """The run's log tail (GET, the last 64 KiB), or append output to it (POST); appended text is
    streamed to open run pages."""

    @extend_schema(responses={200: s.LogTailSerializer, **ERRORS})
    def get(self, request, pk):
        return Response(s.LogTailSerializer(selectors.run_for(request.user, pk)).data)

    @extend_schema(request=s.LogAppendSerializer, responses={204: None, 413: OpenApiResponse(), **ERRORS})
    def post(self, request, pk):
        run = selectors.run_for(request.user, pk)
        if _declared_length(request) > MAX_LOG_APPEND_BODY:
            raise TooLarge(f"A log body may be at most {MAX_LOG_APPEND_BODY // 1024} KiB; send less per call.")
        services.run_append_log(run=run, actor=request.user, **validated(s.LogAppendSerializer, request.data))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunArtifactListView(generics.ListAPIView):
    """The run's artifacts (GET), or store a file as one (POST, multipart, encrypted in the vault)."""

    serializer_class = s.ArtifactSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.artifacts_of(selectors.run_for(self.request.user, self.kwargs["pk"]))

    @extend_schema(
        request={"multipart/form-data": s.ArtifactUploadSerializer},
        responses={201: s.ArtifactSerializer, 413: OpenApiResponse(description="over EXPERIMENTS_MAX_ARTIFACT_BYTES"),
                   **ERRORS},
        description="Store `file` at `path` (default: the file's name); an artifact already at that path is replaced.",
    )  # fmt: skip
    def post(self, request, pk):
        run = selectors.run_for(request.user, pk, "change")  # before the body is read
        limit = services.max_artifact_bytes()
        declared = _declared_length(request)
        if declared > limit + MULTIPART_OVERHEAD:  # refuse before reading the body
            raise TooLarge(f"The upload is {declared:,} bytes; an artifact may be at most {limit:,} bytes.")
        data = validated(s.ArtifactUploadSerializer, request.data)
        upload = data["file"]
        upload.seek(0)
        artifact = services.run_artifact_upload(
            run=run, actor=request.user, src=upload, size=upload.size, path=data["path"] or upload.name
        )
        return Response(
            s.ArtifactSerializer(artifact, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class RunArtifactDownloadView(APIView):
    """One artifact's bytes, decrypted while streaming. Audited as artifact.download."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **ERRORS})
    def get(self, request, pk, path):
        artifact = selectors.artifact_of(selectors.run_for(request.user, pk), path)
        chunks, size, filename = services.run_artifact_open(artifact=artifact, actor=request.user, request=request)
        response = vault.streaming_response(chunks, request=request, size=size, filename=filename)
        response["X-Content-SHA256"] = artifact.blob.sha256
        return response
