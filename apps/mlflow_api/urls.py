"""Routes of the MLflow-compatible API, included at the root by portal/urls.py (portal_app_modules).

Every path under the prefixes reaches one view, which answers ENDPOINT_NOT_FOUND in MLflow's shape
for anything the route table (apps/mlflow_api/protocol.py) does not hold. Importing the handler
modules here fills that table.
"""

from django.urls import re_path

from apps.mlflow_api import artifacts, experiments, logged_models, registry, runs  # noqa: F401  (their @route decorators register)
from apps.mlflow_api.views import artifacts_endpoint, mlflow3_endpoint, mlflow_endpoint

urlpatterns = [
    re_path(r"^api/2\.0/mlflow(?:/(?P<path>.*))?$", mlflow_endpoint, name="mlflow"),
    re_path(r"^ajax-api/2\.0/mlflow(?:/(?P<path>.*))?$", mlflow_endpoint, name="mlflow-ajax"),
    re_path(r"^api/2\.0/mlflow-artifacts(?:/(?P<path>.*))?$", artifacts_endpoint, name="mlflow-artifacts"),
    re_path(r"^ajax-api/2\.0/mlflow-artifacts(?:/(?P<path>.*))?$", artifacts_endpoint, name="mlflow-artifacts-ajax"),
    # MLflow 3's newer calls (logged models, traces, ...) are not supported: MLflow's 404 shape, not a page.
    re_path(r"^(?:ajax-)?api/3\.0/mlflow(?:-artifacts)?(?:/(?P<path>.*))?$", mlflow3_endpoint, name="mlflow-v3"),
]
