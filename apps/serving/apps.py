from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "apps.serving"
    label = "serving"
    verbose_name = "Model serving"
    nav_items = [("Endpoints", "serving:endpoint-list", None), ("Batch scoring", "serving:scoring-list", None)]
    # Creating an endpoint or a scoring job is a role right; everything else comes from the
    # endpoint's (or job's) object permissions: apps/core/permissions.py.
    role_permissions = {
        "ml-engineers": ["serving.add_endpoint", "serving.add_scoringjob"],
        "auditors": ["serving.view_endpoint"],
    }

    def ready(self) -> None:
        from apps.core import residency
        from apps.serving import signals  # noqa: F401  (alias moves and route changes reach every process)
        from apps.serving.services.residency import check_alias_move

        residency.register_alias_guard(check_alias_move)  # the catalog checks alias moves without importing us
