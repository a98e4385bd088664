"""Key the audit chain: entries record the master key they are hashed under (`hash_kid`), and every
existing entry is re-chained once with HMAC-SHA256 under the audit key derived from the key ring.

This is the one sanctioned re-chain: done by the code owner in this migration, in id order, and
audited by a signed checkpoint of the new head written to var/audit-checkpoints.jsonl (note
"rechain:core.0004") and the "portal.audit" log right after it commits. From here on a re-chain is
exactly what verification reports as broken. An empty table (a fresh install) needs no key.

Also: deleting a content type no longer cascades into the trail (PROTECT).
"""

import django.db.models.deletion
from django.db import migrations, models


def rechain(apps, schema_editor):
    from apps.core.audit_chain import rechain_for_migration

    model = apps.get_model("core", "AuditEntry")
    if model.objects.using(schema_editor.connection.alias).exists():
        rechain_for_migration(model, schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("core", "0003_unlink_unused_auditlog_table"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditentry",
            name="hash_kid",
            field=models.CharField(blank=True, default="", help_text="master key the hash is keyed by", max_length=32),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="content_type",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="contenttypes.contenttype",
                verbose_name="content type",
            ),
        ),
        # No reverse: the sha256 chain it replaces is exactly what the keyed one exists to retire.
        migrations.RunPython(rechain, migrations.RunPython.noop),
    ]
