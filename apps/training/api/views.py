"""REST API for training (paths in API.md): templates, jobs, cancel, sweeps. Thin views."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.training import selectors, services, sweeps
from apps.training.api import serializers as s
from apps.training.models import TrainingJob


class TemplateListView(APIView):
    @extend_schema(responses=inline_serializer("TrainingTemplate", {"name": serializers.CharField()}, many=True))
    def get(self, request):
        return Response(services.template_list())


class JobListView(generics.ListAPIView):
    serializer_class = s.JobSerializer

    def get_queryset(self):
        q = self.request.query_params
        state = q.get("state", "")
        if state and state not in TrainingJob.State.values:
            raise ApiValidationError({"state": [f"Use one of {', '.join(TrainingJob.State.values)}."]})
        sweep = q.get("sweep")
        if sweep not in (None, "") and not sweep.isdigit():
            raise ApiValidationError({"sweep": ["sweep is a sweep id."]})
        return selectors.job_list(
            self.request.user, state=state, template=q.get("template", ""), sweep=int(sweep) if sweep else None
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=TrainingJob.State.values),
            OpenApiParameter("template", str),
            OpenApiParameter("sweep", int),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.JobLaunchSerializer, responses={201: s.JobDetailSerializer})
    def post(self, request):
        data = _validated(s.JobLaunchSerializer, request)
        job = services.job_launch(actor=request.user, **data.validated_data)
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)


def _validated(serializer_class, request):
    """A JSON object with only the serializer's fields, validated (400 names what is wrong)."""
    if not isinstance(request.data, dict):
        raise ApiValidationError({"detail": ["Send a JSON object."]})
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    unknown = sorted(set(request.data) - set(data.fields))
    if unknown:
        raise ApiValidationError({name: ["Unknown field."] for name in unknown})
    return data


class JobDetailView(APIView):
    @extend_schema(responses=s.JobDetailSerializer)
    def get(self, request, pk):
        return Response(s.JobDetailSerializer(selectors.get_job(request.user, pk)).data)


class JobCancelView(APIView):
    @extend_schema(request=None, responses=s.JobDetailSerializer)
    def post(self, request, pk):
        job = selectors.get_job(request.user, pk)
        job = services.job_cancel(job=job, actor=request.user)
        return Response(s.JobDetailSerializer(selectors.get_job(request.user, job.pk)).data)


class SweepListView(generics.ListAPIView):
    serializer_class = s.SweepSerializer

    def get_queryset(self):
        return selectors.sweep_list(self.request.user)

    @extend_schema(request=s.SweepCreateSerializer, responses={201: s.SweepSerializer})
    def post(self, request):
        data = _validated(s.SweepCreateSerializer, request)
        sweep = sweeps.sweep_create(actor=request.user, **data.validated_data)
        return Response(s.SweepSerializer(sweep).data, status=status.HTTP_201_CREATED)


class SweepDetailView(APIView):
    @extend_schema(responses=s.SweepSerializer)
    def get(self, request, pk):
        return Response(s.SweepSerializer(selectors.get_sweep(request.user, pk)).data)


class SweepCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: s.SweepSerializer, 409: OpenApiResponse(description="the sweep has already finished")},
        description="Stop scheduling trials and cancel the sweep's queued and running jobs (409 when it has finished).",
    )
    def post(self, request, pk):
        sweep = sweeps.sweep_cancel(sweep=selectors.get_sweep(request.user, pk), actor=request.user)
        return Response(s.SweepSerializer(selectors.get_sweep(request.user, sweep.pk)).data)
