from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts and teams"
    nav_items: list = []
    role_permissions = {
        "platform-admins": [
            "accounts.add_team",
            "accounts.change_team",
            "accounts.view_team",
            "auth.view_user",
            "auth.change_user",
            "auth.add_user",
            "auth.view_group",
            "core.view_auditentry",
        ],
        "auditors": ["core.view_auditentry", "accounts.view_team", "auth.view_user"],
    }

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.accounts import signals  # noqa: F401
        from apps.accounts.roles import sync_roles

        post_migrate.connect(sync_roles, dispatch_uid="accounts.sync_roles")
