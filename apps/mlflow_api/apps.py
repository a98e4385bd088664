from django.apps import AppConfig


class MlflowApiConfig(AppConfig):
    name = "apps.mlflow_api"
    label = "mlflow_api"
    verbose_name = "MLflow-compatible API"
