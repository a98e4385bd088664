# The MLflow-compatible API (issue 19) answers a version's `source`: the run artifact it came from.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0004_region"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="source",
            field=models.CharField(blank=True, max_length=1000),
        ),
    ]
