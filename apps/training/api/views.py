"""REST API for training (paths in shared/API.md): templates, jobs, cancel, run-on-cpu, sweeps, sharing.

Each view validates with `validated`/`validated_query`, calls one service or selector, serializes.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.validation import validated, validated_query
from apps.training import selectors, services
from apps.training.api import serializers as s
from apps.training.scripts import selectors as script_selectors
from apps.training.scripts import services as script_services
from apps.training.scripts.launch import training_launch


class TemplateListView(APIView):
    @extend_schema(responses=inline_serializer("TrainingTemplate", {"name": serializers.CharField()}, many=True))
    def get(self, request):
        return Response(selectors.templates_visible(request.user))


class JobListView(generics.ListAPIView):
    serializer_class = s.JobSerializer

    def get_queryset(self):
        filters = validated_query(s.JobFiltersSerializer, self.request.query_params)
        return selectors.jobs_visible(self.request.user, filters)

    @extend_schema(parameters=[s.JobFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.JobLaunchSerializer, responses={201: s.JobDetailSerializer})
    def post(self, request):
        job = training_launch(actor=request.user, **validated(s.JobLaunchSerializer, request.data))
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailView(APIView):
    @extend_schema(responses=s.JobDetailSerializer)
    def get(self, request, pk):
        return Response(s.JobDetailSerializer(selectors.job_for(request.user, pk)).data)


class JobCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: s.JobDetailSerializer, 409: OpenApiResponse(description="the job has already finished")},
    )
    def post(self, request, pk):
        job = services.job_cancel(job=selectors.job_for(request.user, pk), actor=request.user)
        return Response(s.JobDetailSerializer(selectors.job_for(request.user, job.pk)).data)


class JobMoveToCpuView(APIView):
    @extend_schema(
        request=None,
        responses={
            200: s.JobDetailSerializer,
            409: OpenApiResponse(description="the job is no longer queued, or already waits on a CPU queue"),
        },
        description="Run a queued GPU job on a CPU worker instead (its message moves to the region's cpu queue).",
    )
    def post(self, request, pk):
        job = services.job_move_to_cpu(job=selectors.job_for(request.user, pk), actor=request.user)
        return Response(s.JobDetailSerializer(selectors.job_for(request.user, job.pk)).data)


class SweepListView(generics.ListAPIView):
    serializer_class = s.SweepSerializer

    def get_queryset(self):
        return selectors.sweeps_visible(self.request.user, {})

    @extend_schema(request=s.SweepCreateSerializer, responses={201: s.SweepSerializer})
    def post(self, request):
        sweep = services.sweep_create(actor=request.user, **validated(s.SweepCreateSerializer, request.data))
        return Response(s.SweepSerializer(sweep).data, status=status.HTTP_201_CREATED)


class SweepDetailView(APIView):
    @extend_schema(responses=s.SweepSerializer)
    def get(self, request, pk):
        return Response(s.SweepSerializer(selectors.sweep_for(request.user, pk)).data)


class SweepCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: s.SweepSerializer, 409: OpenApiResponse(description="the sweep has already finished")},
        description="Stop scheduling trials and cancel the sweep's queued and running jobs (409 when it has finished).",
    )
    def post(self, request, pk):
        sweep = services.sweep_cancel(sweep=selectors.sweep_for(request.user, pk), actor=request.user)
        return Response(s.SweepSerializer(selectors.sweep_for(request.user, sweep.pk)).data)


class ScriptListView(generics.ListAPIView):
    serializer_class = s.ScriptSerializer

    def get_queryset(self):
        return script_selectors.scripts_visible(self.request.user, {})

    @extend_schema(request=s.ScriptRegisterSerializer, responses={201: s.ScriptSerializer})
    def post(self, request):
        script = script_services.script_register(
            actor=request.user, **validated(s.ScriptRegisterSerializer, request.data)
        )
        return Response(s.ScriptSerializer(script).data, status=status.HTTP_201_CREATED)


class ScriptDetailView(APIView):
    @extend_schema(responses=s.ScriptSerializer)
    def get(self, request, name):
        return Response(s.ScriptSerializer(script_selectors.script_for(request.user, name)).data)

    @extend_schema(request=s.ScriptUpdateSerializer, responses=s.ScriptSerializer)
    def patch(self, request, name):
        script = script_selectors.script_for(request.user, name)
        body = validated(s.ScriptUpdateSerializer, request.data, partial=True)
        script = script_services.script_update(script=script, actor=request.user, **body)
        return Response(s.ScriptSerializer(script).data)


class ScriptVersionListView(generics.ListAPIView):
    serializer_class = s.ScriptVersionSerializer

    def get_queryset(self):
        return script_selectors.versions_of(script_selectors.script_for(self.request.user, self.kwargs["name"]))

    @extend_schema(request=s.ScriptVersionUploadSerializer, responses={201: s.ScriptVersionSerializer})
    def post(self, request, name):
        script = script_selectors.script_for(request.user, name)
        version = script_services.script_version_add(
            script=script, actor=request.user, **validated(s.ScriptVersionUploadSerializer, request.data)
        )
        return Response(s.ScriptVersionSerializer(version).data, status=status.HTTP_201_CREATED)
