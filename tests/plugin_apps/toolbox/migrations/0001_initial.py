"""The executions table of ``toolbox.execution`` jobs."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Execution",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job_id", models.BigIntegerField(db_index=True)),
                ("attempt", models.IntegerField()),
                ("worker", models.CharField(max_length=200)),
                ("pid", models.IntegerField()),
                ("began", models.DateTimeField()),
            ],
            options={"db_table": "toolbox_executions"},
        ),
    ]
