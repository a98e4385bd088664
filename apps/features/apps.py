from django.apps import AppConfig


class FeaturesConfig(AppConfig):
    name = "apps.features"
    label = "features"
    verbose_name = "Feature registry and store"
    nav_items = [("Features", "features:view-list", None)]
    # Registering entities and views is a data-steward right; reading them needs object permissions.
    role_permissions = {
        "data-stewards": [
            "features.add_entity",
            "features.add_featureview",
            "features.add_trainingset",
        ],
        "ml-engineers": ["features.add_trainingset"],
    }

    def ready(self) -> None:
        from apps.features import signals  # noqa: F401
