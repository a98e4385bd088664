"""PII features keep counts only in their statistics (no top values, min, max, quantiles or histogram)."""

from django.db import migrations

COUNT_KEYS = ("count", "nulls", "distinct")


def scrub(apps, schema_editor):
    FeatureView = apps.get_model("features", "FeatureView")
    for view in FeatureView.objects.exclude(statistics={}).iterator():
        pii = {f["name"] for f in view.features if f.get("pii")}
        stats = {
            name: ({k: v for k, v in s.items() if k in COUNT_KEYS} | {"pii": True}) if name in pii else s
            for name, s in (view.statistics or {}).items()
        }
        if stats != view.statistics:
            FeatureView.objects.filter(pk=view.pk).update(statistics=stats)


class Migration(migrations.Migration):
    dependencies = [("features", "0003_materialization_recovery")]

    operations = [migrations.RunPython(scrub, migrations.RunPython.noop)]
