"""REST API of batch scoring (shared/API.md "/api/v1/scoring/jobs/"): list and create jobs, one
job, cancel, and the predictions download. Each view validates, calls one service or selector,
serializes; the services check permissions (strangers get 404 from the selector)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import vault
from apps.core.api.parsers import PortalJSONParser
from apps.core.api.validation import validated, validated_query
from apps.core.errors import TooLarge
from apps.serving.api import scoring_serializers as s
from apps.serving.scoring.downloads import predictions_download
from apps.serving.scoring.selectors import scoring_job_for, scoring_jobs_visible
from apps.serving.scoring.services import scoring_job_cancel, scoring_job_create

ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    404: OpenApiResponse(description="not found or not visible"),
}
UPLOAD_ENVELOPE_BYTES = 1 << 20  # the multipart envelope and form fields around the file


class ScoringJobListView(generics.ListAPIView):
    serializer_class = s.ScoringJobSerializer
    parser_classes = [MultiPartParser, FormParser, PortalJSONParser]

    def get_queryset(self):
        filters = validated_query(s.ScoringJobFiltersSerializer, self.request.query_params)
        return scoring_jobs_visible(self.request.user, filters)

    @extend_schema(parameters=[s.ScoringJobFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": s.ScoringJobCreateSerializer, "application/json": s.ScoringJobCreateSerializer},
        responses={
            202: s.ScoringJobSerializer,
            413: OpenApiResponse(description="upload over SERVING_SCORING_MAX_UPLOAD_BYTES"),
            **ERRORS,
        },
        description="Score a Parquet or CSV upload (multipart `file`) or a training set (`training_set`) with one "
        "model version, as a job on the cpu or gpu queue; 202 with the queued job.",
    )
    def post(self, request):
        _refuse_oversized_body(request)
        data = validated(s.ScoringJobCreateSerializer, request.data)
        job = scoring_job_create(actor=request.user, request=request, **data)
        return Response(
            s.ScoringJobSerializer(scoring_job_for(request.user, job.pk)).data, status=status.HTTP_202_ACCEPTED
        )


def _refuse_oversized_body(request) -> None:
    """413 from the declared length alone, before the multipart body is read and spooled to disk."""
    limit = settings.SERVING_SCORING_MAX_UPLOAD_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    declared = int(length) if length.isdigit() else 0
    if declared > limit + UPLOAD_ENVELOPE_BYTES:
        raise TooLarge(f"The upload is {declared:,} bytes; a file to score may be at most {limit:,} bytes.")


class ScoringJobDetailView(APIView):
    @extend_schema(responses={200: s.ScoringJobSerializer, **ERRORS})
    def get(self, request, pk):
        return Response(s.ScoringJobSerializer(scoring_job_for(request.user, pk)).data)


class ScoringJobCancelView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: s.ScoringJobSerializer,
            409: OpenApiResponse(description="the job has already ended"),
            **ERRORS,
        },
        description="Cancel a queued job at once; a running one stops before its next chunk.",
    )
    def post(self, request, pk):
        job = scoring_job_cancel(job=scoring_job_for(request.user, pk), actor=request.user, request=request)
        return Response(s.ScoringJobSerializer(scoring_job_for(request.user, job.pk)).data)


class PredictionsDownloadView(APIView):
    """The predictions file; `format` picks the file type, not DRF's renderer."""

    def perform_content_negotiation(self, request, force=False):
        renderer = JSONRenderer()  # errors are JSON whatever `format` says
        return renderer, renderer.media_type

    @extend_schema(
        parameters=[s.PredictionsQuerySerializer],
        responses={
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
            409: OpenApiResponse(description="the job has not succeeded"),
            **ERRORS,
        },
        description="Streamed; audited as scoring.download. Parquet carries X-Content-SHA256 (the job's digest).",
    )
    def get(self, request, pk):
        query = validated_query(s.PredictionsQuerySerializer, request.query_params)
        job = scoring_job_for(request.user, pk)
        out = predictions_download(job=job, actor=request.user, fmt=query["format"], request=request)
        response = vault.streaming_response(
            out.chunks, request=request, size=out.size, filename=out.filename, content_type=out.content_type
        )
        if out.sha256:
            response["X-Content-SHA256"] = out.sha256
        return response
