from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"
    # Navigation entries other apps add through the same attribute: (label, url name, permission).
    # The key ring: no role is given `add_keyrotation`, so only platform admins (superusers) see it.
    nav_items: list[tuple[str, str, str | None]] = [
        ("Audit", "core:audit", "core.view_auditentry"),
        ("Key ring", "core:keys", "core.add_keyrotation"),
    ]

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.core import (
            audit_chain,  # noqa: F401  (writes a checkpoint every AUDIT_CHECKPOINT_EVERY audit entries)
            audit_keys,
            signals,  # noqa: F401
            sqltemplates,
            vault,
            workers,  # noqa: F401
        )
        from apps.core.permissions import clear_caches

        post_migrate.connect(clear_caches, dispatch_uid="core.permissions.clear_caches")
        post_migrate.connect(sqltemplates.clear, dispatch_uid="core.sqltemplates.clear")
        audit_keys.use_keyring(vault.keyring)  # the audit keys come from the vault's key ring
