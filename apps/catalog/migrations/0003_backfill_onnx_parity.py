"""Copy the parity check of versions registered by training jobs before versions kept it.

Training jobs keep their export summary in `TrainingJob.result["onnx"]`; the version page reads the
version's own `onnx_parity`, so older versions get it from the job that produced them. Only rows
whose `onnx_parity` is still empty are written; the reverse migration leaves them as they are.
"""

from django.db import migrations

BATCH = 500


def _parity_from(summary: dict) -> dict | None:
    diff, tolerance = summary.get("parity_max_abs_diff"), summary.get("tolerance")
    if not isinstance(diff, int | float) or not isinstance(tolerance, int | float):
        return None
    threshold = summary.get("parity_threshold")
    return {
        "max_abs_diff": float(diff),
        "tolerance": float(tolerance),
        "threshold": float(threshold) if isinstance(threshold, int | float) else float(tolerance),
        "exporter": str(summary.get("exporter") or "")[:40],
        "batch_sizes_checked": [n for n in summary.get("batch_sizes_checked") or [] if isinstance(n, int)][:20],
    }


def backfill_onnx_parity(apps, schema_editor) -> None:
    TrainingJob = apps.get_model("training", "TrainingJob")
    ModelVersion = apps.get_model("catalog", "ModelVersion")
    jobs = TrainingJob.objects.filter(model_version__isnull=False).values_list("model_version_id", "result")
    for version_id, result in jobs.iterator(chunk_size=BATCH):
        parity = _parity_from((result or {}).get("onnx") or {})
        if parity is not None:
            ModelVersion.objects.filter(pk=version_id, onnx_parity={}).update(onnx_parity=parity)


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0002_version_onnx_parity"),
        ("training", "0001_initial"),
    ]

    operations = [migrations.RunPython(backfill_onnx_parity, migrations.RunPython.noop)]
