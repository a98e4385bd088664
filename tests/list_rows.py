"""How to make N rows for every list route (the registry of tests/core/test_list_costs.py).

`REGISTRY` maps each list route's URL name to a `Rows` factory; `NOT_ROW_LISTS` names the routes
the discovery takes for lists that are not lists of stored rows, with the reason."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.conftest import make_user
from tests.list_rows_accounts import _lockouts
from tests.list_rows_monitoring import _alerts, _drift_reports, _webhook, _webhook_attempts, _webhooks
from tests.list_rows_privacy import _erasures
from tests.list_rows_training_scripts import _script, _script_versions, _scripts

TINY = {"epochs": 2, "batch_size": 256, "hidden_units": 8, "layers": 1, "patience": 0}


# --- factories: `make(w, start, stop)` adds rows number start..stop-1 that `w.<persona>` sees ---------


def _model(w, name="list-costs"):
    from apps.catalog import services
    from tests.access.objects import onnx_bytes

    if not hasattr(w, "model"):
        data = onnx_bytes()
        w.model = services.model_create(actor=w.owner, name=name, tags=["t"], team="risk")
        w.first = services.version_register(
            model=w.model, actor=w.owner, artifact=io.BytesIO(data), artifact_size=len(data), metrics={"auc": 0.9}
        )
    return w.model


def _versions(w, start, stop):
    from apps.catalog.models import ModelVersion, RegisteredModel

    model = _model(w)
    model.refresh_from_db()
    for i in range(start, stop):
        ModelVersion.objects.create(
            model=model, version=model.latest_version + 1 + i - start, artifact=w.first.artifact,
            created_by=w.owner, metrics={"auc": 0.5 + i / 1000},
        )  # fmt: skip
    RegisteredModel.objects.filter(pk=model.pk).update(latest_version=model.latest_version + stop - start)


def _aliases(w, start, stop):
    from apps.catalog.models import Alias

    model = _model(w)
    for i in range(start, stop):
        Alias.objects.create(model=model, name=f"a{i}", version=w.first, moved_by=w.owner)


def _models(w, start, stop):
    from apps.catalog import services
    from apps.catalog.models import Alias, ModelVersion

    _model(w, name="m-base")
    for i in range(start, stop):
        m = services.model_create(actor=w.owner, name=f"m-{i}", tags=["t"], team="risk" if i % 2 else None)
        v = ModelVersion.objects.create(model=m, version=1, artifact=w.first.artifact, created_by=w.owner)
        Alias.objects.create(model=m, name="a1", version=v, moved_by=w.owner)
        m.latest_version = 1
        m.save(update_fields=["latest_version"])


def _audit(w, start, stop):
    from apps.core.audit import audit_event

    for i in range(start, stop):
        audit_event(actor=w.owner, event="test.event", data={"i": i})


def _tokens(w, start, stop):
    from apps.accounts.services import token_create

    for i in range(start, stop):
        token_create(user=w.owner, name=f"t{i}", scopes=["read"], expires_days=1 if i % 2 else None)


def _experiments(w, start, stop):
    from apps.experiments import services

    for i in range(start, stop):
        exp = services.experiment_create(actor=w.owner, name=f"exp-{i:03d}", tags={"area": "risk"})
        services.run_create(experiment=exp, name="only", actor=w.owner, source="script")


def _experiment(w):
    from apps.experiments import services

    if not hasattr(w, "experiment"):
        w.experiment = services.experiment_create(actor=w.owner, name="churn")
    return w.experiment


def _runs(w, start, stop):
    from apps.experiments import services

    exp = _experiment(w)
    for i in range(start, stop):
        r = services.run_create(
            experiment=exp, name=f"run-{i:03d}", actor=w.owner, source="script",
            params={"lr": 0.01 * (i + 1)}, tags={"seed": str(i)},
        )  # fmt: skip
        services.run_log_batch(
            run=r, actor=w.owner,
            metrics=[{"key": "loss", "step": 0, "value": 1.0 / (i + 1)}, {"key": "acc", "step": 0, "value": 0.5}],
        )  # fmt: skip


def _run(w):
    from apps.experiments import services

    if not hasattr(w, "run"):
        w.run = services.run_create(experiment=_experiment(w), name="r", actor=w.owner, source="script")
    return w.run


def _artifacts(w, start, stop):
    """Half outside the portal (a URI), half stored (the page links those for download)."""
    from apps.experiments import services

    run = _run(w)
    for i in range(start, stop):
        if i % 2:
            services.run_artifact_upload(run=run, actor=w.owner, src=io.BytesIO(b"x"), size=1, path=f"out/f{i:03d}.txt")
        else:
            path, uri = f"plots/p{i:03d}.png", f"s3://b/p{i}.png"
            services.run_artifact_add(run=run, actor=w.owner, path=path, size=1, uri=uri)


def _compare_query(w) -> str:
    from apps.experiments.models import Run

    return "?" + "&".join(
        f"runs={pk}" for pk in Run.objects.filter(experiment=_experiment(w)).values_list("pk", flat=True)
    )


def _trials(w, start, stop):
    from apps.training.models import TrainingJob
    from apps.training.services import job_launch

    sweep = _sweep(w)
    for i in range(start, stop):
        job = job_launch(actor=w.owner, template="tabular-mlp-classifier", params=TINY)
        TrainingJob.objects.filter(pk=job.pk).update(sweep=sweep, trial_number=i + 1, metrics={"val_loss": 1 / (i + 1)})


def _metrics(w, start, stop):
    from apps.experiments import services

    metrics = [{"key": f"m{i:03d}", "step": 0, "value": float(i)} for i in range(start, stop)]
    services.run_log_batch(run=_run(w), actor=w.owner, metrics=metrics)


def _entity(w):
    from apps.features import services

    if not hasattr(w, "entity"):
        w.entity = services.entity_create(actor=w.owner, name="customer", join_keys=[{"name": "id", "dtype": "int64"}])
    return w.entity


FEATURES = [{"name": "balance", "dtype": "float64"}, {"name": "email", "dtype": "string", "pii": True}]


def _feature_views(w, start, stop):
    from apps.features import services

    entity = _entity(w)
    for i in range(start, stop):
        services.feature_view_create(
            actor=w.owner,
            name=f"view-{i}",
            entity=entity,
            features=FEATURES,
            tags=["t"],
            team="risk" if i % 2 else None,
        )


def _entities(w, start, stop):
    from apps.features import services

    for i in range(start, stop):
        entity = services.entity_create(actor=w.owner, name=f"entity-{i}", join_keys=[{"name": "id", "dtype": "int64"}])
        services.feature_view_create(actor=w.owner, name=f"entity-{i}-view", entity=entity, features=FEATURES)


def _training_sets(w, start, stop):
    from apps.core.permissions import grant_owner
    from apps.features.models import TrainingSet

    for i in range(start, stop):
        ts = TrainingSet.objects.create(
            name=f"set-{i}", features=["v:a"], path=f"s{i}.parquet", columns=["a"], entity_digest="0" * 64,
            digest="0" * 64, lineage={}, owner=w.owner, team=w.team if i % 2 else None,
        )  # fmt: skip
        grant_owner(ts)


def _jobs(w, start, stop):
    from apps.training.services import job_launch

    for i in range(start, stop):
        job_launch(actor=w.owner, template="tabular-mlp-classifier", params=TINY, team="risk" if i % 2 else None)


def _sweeps(w, start, stop):
    from apps.core.permissions import grant_owner
    from apps.training.models import Sweep

    exp = _experiment(w)
    for i in range(start, stop):
        sweep = Sweep.objects.create(
            owner=w.owner, team=w.team if i % 2 else None, name=f"s{i}", template="tabular-mlp-classifier",
            method="grid", space={"lr": {"values": [0.01]}}, metric="val_loss", mode="min", max_trials=1,
            parallelism=1, experiment=exp,
        )  # fmt: skip
        grant_owner(sweep)


def _notifications(w, start, stop):
    from apps.notifications import services

    for i in range(start, stop):
        services.notify(recipients=[w.owner], kind="promotion.requested", title=f"Decide {i}", url=f"/x/{i}/")


def _promotion_model(w):
    from apps.catalog import services
    from apps.catalog.models import CARD_SECTIONS

    model = _model(w)
    if not getattr(w, "carded", False):
        services.card_update(model=model, actor=w.owner, **{f: f"{label}: written." for f, label in CARD_SECTIONS})
        w.carded = True
    return model


def _promotions(w, start, stop):
    from apps.approvals import services
    from apps.catalog import services as catalog
    from tests.access.objects import onnx_bytes

    model, data = _promotion_model(w), onnx_bytes()
    for i in range(start, stop):
        version = catalog.version_register(
            model=model, actor=w.owner, artifact=io.BytesIO(data), artifact_size=len(data),
            metrics={"val_auc": 0.9 + i / 1000}, lineage={"run_id": "7", "training_data_digest": "sha256:ab"},
        )  # fmt: skip
        services.promotion_request(
            actor=w.owner, version=version, target_alias="production", justification="Better AUC.",
            change={"type": "normal", "risk": "low", "impact": "Small.", "rollback_plan": "Roll back."},
        )  # fmt: skip


def _policies(w, start, stop):
    from apps.approvals.models import GatePolicy
    from apps.catalog import services

    for i in range(start, stop):
        model = services.model_create(actor=w.owner, name=f"gated-{i}", team="risk" if i % 2 else None)
        GatePolicy.objects.create(model=model, alias="production", approver_groups=["approvers"], updated_by=w.owner)


def _feature_view(w):
    from apps.features import services

    if not hasattr(w, "view"):
        w.view = services.feature_view_create(actor=w.owner, name="stats", entity=_entity(w), features=FEATURES)
    return w.view


def _materializations(w, start, stop):
    from datetime import UTC, datetime

    from apps.features.models import MaterializationJob

    view, t0 = _feature_view(w), datetime(2024, 5, 1, tzinfo=UTC)
    for _ in range(start, stop):
        MaterializationJob.objects.create(view=view, version=1, requested_by=w.owner, start=t0, end=t0)


def _training_set(w):
    if not hasattr(w, "training_set"):
        _training_sets(w, 1000, 1001)
        from apps.features.models import TrainingSet

        w.training_set = TrainingSet.objects.get(name="set-1000")
    return w.training_set


def _job(w):
    from apps.training.services import job_launch

    if not hasattr(w, "job"):
        w.job = job_launch(actor=w.owner, template="tabular-mlp-classifier", params=TINY)
    return w.job


def _sweep(w):
    from apps.training.models import Sweep

    if not hasattr(w, "sweep"):
        _sweeps(w, 1000, 1001)
        w.sweep = Sweep.objects.get(name="s1000")
    return w.sweep


def _endpoints(w, start, stop):
    from apps.catalog import services as catalog
    from apps.serving.services.endpoints import endpoint_create

    model = _model(w)
    if not model.aliases.filter(name="staging").exists():
        catalog.alias_move(model=model, alias="staging", version=w.first, actor=w.owner)
    for i in range(start, stop):
        endpoint_create(
            actor=w.owner, name=f"ep-{i}", team="risk" if i % 2 else None,
            routes=[{"name": "main", "model": model.name, "alias": "staging", "weight": 90},
                    {"name": "pinned", "model": model.name, "version": 1, "weight": 10},
                    {"name": "copy", "model": model.name, "version": 1, "weight": 50, "mode": "shadow"}],
        )  # fmt: skip


def _endpoint(w):
    if not hasattr(w, "endpoint"):
        _endpoints(w, 1000, 1001)
        from apps.serving.models import Endpoint

        w.endpoint = Endpoint.objects.get(name="ep-1000")
    return w.endpoint


def _scoring_jobs(w, start, stop):
    from apps.core.permissions import grant_owner
    from apps.serving.models import ScoringJob

    _model(w)
    for i in range(start, stop):
        job = ScoringJob.objects.create(
            owner=w.owner, version=w.first, queue="cpu", source={"upload": f"rows-{i}.csv", "format": "csv"},
            rows_total=1000 + i, rows_done=i, progress=0.5,
        )  # fmt: skip
        grant_owner(job)


def _shares(target: Callable) -> Callable:
    """Rows of an object's sharing list: `target(w)` shared with one more user per row."""

    def make(w, start, stop):
        from apps.core.sharing import share_object
        from tests.conftest import PERSONA_ROLES

        obj = target(w)
        for i in range(start, stop):
            user = make_user(f"share-{i}", *PERSONA_ROLES)
            share_object(obj=obj, actor=w.owner, role="viewer" if i % 2 else "editor", user=user)

    return make


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    make: Callable  # make(w, start, stop)
    query: str | Callable = ""  # appended to the route's URL (or made from the world)
    persona: str = "owner"
    args: Callable = field(default=lambda w: [])  # the route's URL arguments, from the world


REGISTRY: dict[str, Rows] = {
    # API
    "api-v1:core:audit-list": Rows(_audit, "?event=test.event&page_size=100", persona="auditor"),
    "api-v1:approvals:policy-list": Rows(_policies, "?page_size=100"),
    "api-v1:approvals:promotion-list": Rows(_promotions, "?page_size=100"),
    "api-v1:catalog:model-list": Rows(_models, "?page_size=100"),
    "api-v1:catalog:version-list": Rows(_versions, "?page_size=100", args=lambda w: [_model(w).name]),
    "api-v1:catalog:alias-list": Rows(_aliases, "?page_size=100", args=lambda w: [_model(w).name]),
    "api-v1:experiments:experiment-list": Rows(_experiments, "?page_size=100"),
    "api-v1:experiments:run-list": Rows(_runs, "?page_size=100&order_by=-metrics.loss"),
    "api-v1:experiments:run-artifact-list": Rows(_artifacts, "?page_size=100", args=lambda w: [_run(w).pk]),
    "api-v1:experiments:run-metric-keys": Rows(_metrics, args=lambda w: [_run(w).pk]),
    "api-v1:features:entity-list": Rows(_entities, "?page_size=100"),
    "api-v1:features:view-list": Rows(_feature_views, "?page_size=100&tag=t"),
    "api-v1:features:training-set-list": Rows(_training_sets, "?page_size=100"),
    "api-v1:notifications:notification-list": Rows(_notifications, "?page_size=100"),
    "api-v1:training:job-list": Rows(_jobs, "?page_size=100"),
    "api-v1:training:sweep-list": Rows(_sweeps, "?page_size=100"),
    "api-v1:serving:endpoint-list": Rows(_endpoints, "?page_size=100"),
    "api-v1:serving:scoring-list": Rows(_scoring_jobs, "?page_size=100"),
    "api-v1:features:view-materialize": Rows(_materializations, args=lambda w: [_feature_view(w).name]),
    "api-v1:monitoring:alert-list": Rows(_alerts, "?page_size=100"),
    "api-v1:monitoring:report-list": Rows(_drift_reports, "?page_size=100"),
    "api-v1:monitoring:webhook-list": Rows(_webhooks, "?page_size=100", persona="admin"),
    "api-v1:privacy:erasure-list": Rows(_erasures, "?page_size=100", persona="admin"),
    "api-v1:monitoring:webhook-deliveries": Rows(
        _webhook_attempts, "?page_size=100", persona="admin", args=lambda w: [_webhook(w).pk]
    ),
    # sharing lists: who has access to one object
    "api-v1:catalog:model-sharing": Rows(_shares(_model), args=lambda w: [_model(w).name]),
    "api-v1:experiments:experiment-sharing": Rows(_shares(_experiment), args=lambda w: [_experiment(w).pk]),
    # a run's sharing is its experiment's (RunSharingView)
    "api-v1:experiments:run-sharing": Rows(_shares(_experiment), args=lambda w: [_run(w).pk]),
    "api-v1:features:entity-sharing": Rows(_shares(_entity), args=lambda w: [_entity(w).name]),
    "api-v1:features:view-sharing": Rows(_shares(_feature_view), args=lambda w: [_feature_view(w).name]),
    "api-v1:features:training-set-sharing": Rows(_shares(_training_set), args=lambda w: [_training_set(w).pk]),
    "api-v1:training:job-sharing": Rows(_shares(_job), args=lambda w: [_job(w).pk]),
    "api-v1:training:sweep-sharing": Rows(_shares(_sweep), args=lambda w: [_sweep(w).pk]),
    "api-v1:training:script-list": Rows(_scripts, "?page_size=100"),
    "api-v1:training:script-versions": Rows(_script_versions, "?page_size=100", args=lambda w: [_script(w).name]),
    "api-v1:training:script-sharing": Rows(_shares(_script), args=lambda w: [_script(w).name]),
    "training:script-list": Rows(_scripts),
    "training:script-detail": Rows(_script_versions, args=lambda w: [_script(w).name]),
    "api-v1:serving:endpoint-sharing": Rows(_shares(_endpoint), args=lambda w: [_endpoint(w).name]),
    # pages
    "core:audit": Rows(_audit, "?event=test.event", persona="auditor"),
    "accounts:profile": Rows(_tokens),
    "approvals:inbox": Rows(_promotions),
    "approvals:request-list": Rows(_promotions),
    "catalog:model-list": Rows(_models),
    "catalog:model-detail": Rows(_versions, args=lambda w: [_model(w).name]),
    "experiments:experiment-list": Rows(_experiments),
    "experiments:experiment-detail": Rows(
        _runs, "?page_size=100&sort=-metrics.loss&metric=loss&param=lr", args=lambda w: [_experiment(w).pk]
    ),
    "experiments:run-detail": Rows(_artifacts, args=lambda w: [_run(w).pk]),
    "experiments:run-compare": Rows(_runs, _compare_query, args=lambda w: [_experiment(w).pk]),
    "features:view-detail": Rows(_materializations, args=lambda w: [_feature_view(w).name]),
    "training:sweep-detail": Rows(_trials, args=lambda w: [_sweep(w).pk]),
    "features:view-list": Rows(_feature_views),
    "features:entity-list": Rows(_entities),
    "features:entity-detail": Rows(_feature_views, args=lambda w: [_entity(w).name]),
    "features:training-set-list": Rows(_training_sets),
    "notifications:list": Rows(_notifications),
    "training:job-list": Rows(_jobs),
    "training:queues": Rows(_jobs),
    "training:sweep-list": Rows(_sweeps),
    "serving:endpoint-list": Rows(_endpoints),
    "serving:scoring-list": Rows(_scoring_jobs),
    "monitoring:alert-list": Rows(_alerts),
    "monitoring:report-list": Rows(_drift_reports),
    "privacy:requests": Rows(_erasures, persona="admin"),
    "accounts:lockouts": Rows(_lockouts, persona="admin"),
}

# Routes the discovery below takes for lists that are not lists of stored rows, with the reason.
NOT_ROW_LISTS = {
    "api-v1:training:template-list": "the training templates are code (a fixed registry), not rows",
    "api-v1:monitoring:endpoint-monitoring": "an overview: at most 20 open alerts beside traffic and verdicts "
    "(the paged list is /api/v1/monitoring/alerts/?endpoint=)",
}
