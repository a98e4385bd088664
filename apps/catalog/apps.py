from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "apps.catalog"
    label = "catalog"
    verbose_name = "Model catalog"
    nav_items = [("Models", "catalog:model-list", None)]
    # Creating a model is a role right; everything else comes from object permissions only.
    role_permissions = {"ml-engineers": ["catalog.add_registeredmodel"]}
