from django.urls import path

from apps.experiments import views

urlpatterns = [
    path("experiments/", views.experiment_list, name="experiment-list"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment-detail"),
    path("experiments/<int:pk>/compare/", views.run_compare, name="run-compare"),
    path("experiments/<int:pk>/share/", views.experiment_share, name="experiment-share"),
    path("experiments/<int:pk>/unshare/", views.experiment_unshare, name="experiment-unshare"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
]
