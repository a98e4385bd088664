from django.urls import path

from apps.training import views
from apps.training.scripts import views as script_views

urlpatterns = [
    path("training/", views.job_list, name="job-list"),
    path("training/templates/", views.template_list, name="template-list"),
    path("training/templates/<slug:name>/launch/", views.job_launch, name="job-launch"),
    path("training/jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("training/jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("training/jobs/<int:pk>/run-on-cpu/", views.job_move_to_cpu, name="job-run-on-cpu"),
    path("training/jobs/<int:pk>/share/", views.job_share, name="job-share"),
    path("training/jobs/<int:pk>/unshare/", views.job_unshare, name="job-unshare"),
    path("training/queues/", views.queue_page, name="queues"),
    path("training/costs/", views.cost_page, name="costs"),
    path("training/sweeps/", views.sweep_list, name="sweep-list"),
    path("training/sweeps/new/<slug:template>/", views.sweep_create, name="sweep-create"),
    path("training/sweeps/<int:pk>/", views.sweep_detail, name="sweep-detail"),
    path("training/sweeps/<int:pk>/cancel/", views.sweep_cancel, name="sweep-cancel"),
    path("training/sweeps/<int:pk>/share/", views.sweep_share, name="sweep-share"),
    path("training/sweeps/<int:pk>/unshare/", views.sweep_unshare, name="sweep-unshare"),
    path("training/scripts/", script_views.script_list, name="script-list"),
    path("training/scripts/<slug:name>/", script_views.script_detail, name="script-detail"),
    path("training/scripts/<slug:name>/upload/", script_views.script_upload, name="script-upload"),
    path("training/scripts/<slug:name>/launch/", script_views.script_launch, name="script-launch"),
    path("training/scripts/<slug:name>/share/", script_views.script_share, name="script-share"),
    path("training/scripts/<slug:name>/unshare/", script_views.script_unshare, name="script-unshare"),
]
