from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approval gates"
    nav_items = [("Approvals", "approvals:inbox", None)]
    # Requesting is a role right; seeing a request comes from the model (or being one of its
    # approvers), deciding from the policy's groups: apps/core/permissions.py.
    role_permissions = {
        "ml-engineers": ["approvals.add_promotionrequest"],
        "auditors": ["approvals.view_promotionrequest", "approvals.view_gatepolicy"],
    }

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.approvals.policies import seed_default_policies

        post_migrate.connect(seed_default_policies, dispatch_uid="approvals.seed_default_policies")
