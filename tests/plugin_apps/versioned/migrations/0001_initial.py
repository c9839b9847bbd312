"""The versioned plugin's own table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Upgrade",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("from_version", models.CharField(max_length=50)),
                ("to_version", models.CharField(max_length=50)),
                ("pid", models.IntegerField()),
            ],
            options={"db_table": "versioned_upgrades"},
        ),
    ]
