"""auditlog's own LogEntry table is unused (core.AuditEntry is swapped in), but its migrations
still create it with a foreign key to the user table that Django's flush does not know about.
On PostgreSQL that key makes TRUNCATE of auth_user fail; drop it. The table stays empty."""

from django.db import migrations


def drop_foreign_keys(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite enforces nothing on an empty table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('auditlog_logentry')")
        if cursor.fetchone()[0] is None:
            return
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'auditlog_logentry'::regclass AND contype = 'f'"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'ALTER TABLE auditlog_logentry DROP CONSTRAINT "{name}"')


class Migration(migrations.Migration):
    dependencies = [("core", "0002_vaultblob"), ("auditlog", "0017_add_actor_email")]
    operations = [migrations.RunPython(drop_foreign_keys, migrations.RunPython.noop)]
