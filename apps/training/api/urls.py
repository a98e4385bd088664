from django.urls import path

from apps.core.api.sharing import SharingView
from apps.training import selectors
from apps.training.api import views
from apps.training.scripts.selectors import script_for

urlpatterns = [
    path("training/templates/", views.TemplateListView.as_view(), name="template-list"),
    path("training/jobs/", views.JobListView.as_view(), name="job-list"),
    path("training/jobs/<int:pk>/", views.JobDetailView.as_view(), name="job-detail"),
    path("training/jobs/<int:pk>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
    path("training/jobs/<int:pk>/run-on-cpu", views.JobMoveToCpuView.as_view(), name="job-run-on-cpu"),
    path("training/jobs/<int:pk>/sharing", SharingView.as_view(lookup=selectors.job_for), name="job-sharing"),
    path("training/sweeps/", views.SweepListView.as_view(), name="sweep-list"),
    path("training/sweeps/<int:pk>/", views.SweepDetailView.as_view(), name="sweep-detail"),
    path("training/sweeps/<int:pk>/cancel", views.SweepCancelView.as_view(), name="sweep-cancel"),
    path("training/sweeps/<int:pk>/sharing", SharingView.as_view(lookup=selectors.sweep_for), name="sweep-sharing"),
    path("training/scripts/", views.ScriptListView.as_view(), name="script-list"),
    path("training/scripts/<str:name>/", views.ScriptDetailView.as_view(), name="script-detail"),
    path("training/scripts/<str:name>/versions/", views.ScriptVersionListView.as_view(), name="script-versions"),
    path("training/scripts/<str:name>/sharing", SharingView.as_view(lookup=script_for), name="script-sharing"),
]
