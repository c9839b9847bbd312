from django.db import migrations, models


class Migration(migrations.Migration):
    """The word count the notes.word_count job stores on each new note."""

    dependencies = [("notes", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="note",
            name="word_count",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
