"""A table that release 1.1.0 adds: ``pm upgrade`` creates it, or has not yet."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("versioned", "0001_initial")]

    operations = [
        migrations.RunSQL("CREATE TABLE versioned_added_in_1_1 (id integer)",
                          "DROP TABLE versioned_added_in_1_1"),
    ]
