from django.urls import path

from apps.experiments import views

urlpatterns = [
    path("experiments/", views.experiment_list, name="experiment-list"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment-detail"),
    path("experiments/<int:pk>/compare/", views.run_compare, name="run-compare"),
    path("experiments/<int:pk>/share/", views.experiment_share, name="experiment-share"),
    path("experiments/<int:pk>/unshare/", views.experiment_unshare, name="experiment-unshare"),
    path("experiments/<int:pk>/columns/", views.runs_table_columns, name="runs-table-columns"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/share/", views.run_share, name="run-share"),
    path("runs/<int:pk>/unshare/", views.run_unshare, name="run-unshare"),
]
