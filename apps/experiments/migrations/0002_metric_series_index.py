"""The metric series index: covering on PostgreSQL (index-only scans), plain on SQLite."""

from django.db import migrations

NAME = "metric_run_key_step_idx"
TABLE = "experiments_metricpoint"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX {NAME} ON {TABLE} (run_id, key, step) INCLUDE (value, timestamp)")
    else:
        schema_editor.execute(f"CREATE INDEX {NAME} ON {TABLE} (run_id, key, step)")


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX {NAME}")


class Migration(migrations.Migration):
    dependencies = [("experiments", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
