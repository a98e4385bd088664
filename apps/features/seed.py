"""Demo feature views from real data that ships with scikit-learn (breast cancer, wine)."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
from django.utils import timezone

from apps.features import services, training_sets
from apps.features.models import Entity, FeatureView, TrainingSet


def _clean(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")


def _rows(data, key: str, rng, now, extra=None) -> tuple[list[dict], list[dict]]:
    """One row per sample plus a later re-measurement for a third of them; labels one hour after."""
    names = [_clean(n) for n in data.feature_names]
    rows, labels = [], []
    for i, sample in enumerate(data.data):
        ts = now - timedelta(days=int(rng.integers(2, 30)), minutes=int(rng.integers(0, 1440)))
        row = {key: i, "event_timestamp": ts.isoformat(), **{n: float(v) for n, v in zip(names, sample, strict=True)}}
        if extra:
            row.update(extra(i))
        rows.append(row)
        if rng.random() < 0.33:
            later = {**row, "event_timestamp": (ts + timedelta(days=1)).isoformat()}
            later.update({n: float(v) * (1 + rng.normal(0, 0.01)) for n, v in zip(names, sample, strict=True)})
            rows.append(later)
        labels.append({key: i, "event_timestamp": (ts + timedelta(hours=1)).isoformat(), "target": int(data.target[i])})
    return rows, labels


def _view(owner, team, *, entity, key, name, data, description, pii=None):
    features = [{"name": _clean(n), "dtype": "float64", "description": n} for n in data.feature_names]
    if pii:
        features.append(pii)
    slug = team.slug if team is not None else None  # created for the team: shared with it as viewer
    entity_obj = Entity.objects.filter(name=entity).first() or services.entity_create(
        actor=owner, name=entity, join_keys=[{"name": key, "dtype": "int64"}], description=f"{entity} (demo ids)",
        team=slug,
    )  # fmt: skip
    return services.feature_view_create(
        actor=owner, name=name, entity=entity_obj, features=features, description=description,
        tags=["demo", "sklearn"], ttl_seconds=90 * 86400, team=slug,
    )  # fmt: skip


def seed(*, users, team, out) -> None:
    owner = users.get("steward")
    if owner is None:
        out.write("  features: no 'steward' demo user; skipped")
        return
    from sklearn.datasets import load_breast_cancer, load_wine

    rng = np.random.default_rng(42)
    now = timezone.now().replace(microsecond=0)
    specs = [
        ("patient", "patient_id", "breast-cancer-cells", load_breast_cancer(),
         "Cell-nucleus measurements per patient (UCI breast cancer, via scikit-learn).",
         {"name": "contact_email", "dtype": "string", "pii": True, "description": "patient contact (synthetic)"},
         lambda i: {"contact_email": f"patient{i}@clinic.example"}),
        ("wine-lot", "lot_id", "wine-chemistry", load_wine(),
         "Chemical analysis per wine lot (UCI wine, via scikit-learn).", None, None),
    ]  # fmt: skip
    for entity, key, name, data, description, pii, extra in specs:
        if FeatureView.objects.filter(name=name).exists():
            out.write(f"  features: {name} exists; left as is")
            continue
        view = _view(owner, team, entity=entity, key=key, name=name, data=data, description=description, pii=pii)
        rows, labels = _rows(data, key, rng, now, extra)
        result = services.feature_view_ingest(view=view, actor=owner, data=rows)
        job = services.feature_view_materialize(view=view, actor=owner, start=now - timedelta(days=60), end=now)
        job = services.materialization_run(job_id=job.pk)
        out.write(f"  features: {name}: {result['rows']} rows ingested, {job.keys_written} keys online ({job.state})")
        ts_name = f"{name}-labels"
        if not TrainingSet.objects.filter(name=ts_name).exists():
            refs = [f"{name}:{_clean(n)}" for n in data.feature_names]
            ts = training_sets.training_set_create(
                actor=owner, name=ts_name, features=refs, entity_rows=labels,
                team=team.slug if team is not None else None,
            )  # fmt: skip
            out.write(f"  features: training set {ts_name}: {ts.row_count} rows, digest {ts.digest[:12]}")
