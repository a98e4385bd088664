"""Demo approvals, so that the leadership inbox and an evidence page have something on the first run.

On the catalog's demo model `breast-cancer-mlp` (two versions, staging -> v2):
- a platform admin ("admin") gives the model its own `production` policy: one approval from the
  `approvers` group (the demo has one approver), and the checks the demo versions can be held to
  (they are trained at seed time without a tracked run, so the default policy's `lineage` and
  `val_auc` checks would fail every time; the wine request below shows that failure on purpose);
- v1 -> production, requested by "engineer2", approved by "approver": promoted;
- v2 -> production, requested by "engineer2": awaiting the approver's decision, with v2 against
  v1 in the metric table and chart.
On `wine-mlp`: v1 -> production under the default policy: checks failed (its card is incomplete,
no val_auc, no lineage), the evidence of a blocked request.

Everything goes through the services (audited, notified) as the users named. The checks run here
at once rather than on a worker, so the pages are full before `up` starts one (the queued
`approvals.run_checks` then finds them done and does nothing). The demo's e-mails are not sent:
its users have example.com addresses. Idempotent: a model that has promotion requests is left alone.
"""

from __future__ import annotations

from django.test.utils import override_settings

from apps.approvals import services
from apps.approvals.models import GatePolicy, PromotionRequest
from apps.approvals.selectors import evidence_for
from apps.catalog.models import RegisteredModel
from apps.core.audit import system_user

DEMO_CHECKS = [
    {"name": "metric_threshold", "params": {"metric": "roc_auc", "max_drop": 0.005}},
    {"name": "onnx_parity", "params": {"max_abs_diff": 1e-4}},
    {"name": "model_card", "params": {}},
    {"name": "artifact_digest", "params": {}},
    {"name": "open_alerts", "params": {}},
]
NEEDED = ("engineer", "engineer2", "approver", "admin")


def seed(*, users, team, out) -> None:
    missing = [name for name in NEEDED if users.get(name) is None]
    if missing:
        out.write(f"  approvals: no demo user(s) {', '.join(missing)}; skipped")
        return
    # Apps seed in name order and "approvals" comes before "catalog": seed the catalog's demo models
    # first (idempotent: models that already have versions are left alone).
    from apps.catalog import seed as catalog_seed

    catalog_seed.seed(users=users, team=team, out=out)
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        said = [_breast_cancer(users), _wine(users)]
    for line in said:
        out.write(f"  approvals: {line}")


def _file(version, requester, **change) -> PromotionRequest:
    justification = change.pop("justification")
    promotion = services.promotion_request(
        actor=requester, version=version, target_alias="production", justification=justification, change=change
    )
    return services.promotion_run_checks(promotion=promotion, actor=system_user())


def _breast_cancer(users) -> str:
    model = RegisteredModel.objects.filter(name="breast-cancer-mlp").first()
    if model is None or model.versions.count() < 2:
        return "breast-cancer-mlp has fewer than two versions; no requests"
    if PromotionRequest.objects.filter(model=model).exists():
        return "breast-cancer-mlp already has promotion requests"
    if not GatePolicy.objects.filter(model=model, alias="production").exists():
        services.policy_create(
            actor=users["admin"],
            model=model,
            alias="production",
            approver_groups=["approvers"],
            approvals_required=1,
            checks=DEMO_CHECKS,
            expiry_hours=14 * 24,
        )
    v1, v2 = model.versions.get(version=1), model.versions.get(version=2)
    first = _file(
        v1,
        users["engineer2"],
        justification="First production release of the triage model; validated with the pathology team.",
        type="standard",
        risk="low",
        impact="Triage suggestions appear for pathologists; no automated decision.",
        rollback_plan="Remove the production alias; the triage screen falls back to manual ordering.",
    )
    lines = []
    if first.state == PromotionRequest.State.AWAITING_APPROVAL:
        services.promotion_decide(
            actor=users["approver"],
            promotion=first,
            decision="approve",
            comment="Card complete, parity within limit; fine for decision support.",
            evidence_digest=evidence_for(first)["evidence_digest"],
        )
        first.refresh_from_db()
    lines.append(f"breast-cancer-mlp v1 -> production: {first.get_state_display().lower()} (#{first.pk})")
    second = _file(
        v2,
        users["engineer2"],
        justification="Wider hidden layer and longer training: better ROC AUC and F1 on the held-out 20%.",
        type="normal",
        risk="medium",
        impact="Triage order changes for some cases; pathologists still review every sample.",
        rollback_plan="Roll back on the evidence page: production returns to v1 in one action.",
    )
    lines.append(f"breast-cancer-mlp v2 -> production: {second.get_state_display().lower()} (#{second.pk})")
    return "; ".join(lines)


def _wine(users) -> str:
    model = RegisteredModel.objects.filter(name="wine-mlp").first()
    version = model.versions.order_by("-version").first() if model is not None else None
    if version is None:
        return "wine-mlp has no version; no request"
    if PromotionRequest.objects.filter(model=model).exists():
        return "wine-mlp already has promotion requests"
    failed = _file(
        version,
        users["engineer2"],
        justification="Teaching example; shows what the default production policy asks for.",
        type="normal",
        risk="low",
        impact="None (teaching example).",
        rollback_plan="Withdraw.",
    )
    return f"wine-mlp v{version.version} -> production: {failed.get_state_display().lower()} (#{failed.pk})"
