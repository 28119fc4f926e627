"""Dispatch.version_number: the sent version's number within its publication (decision 0076)."""

from typing import Any

from django.db import migrations, models


def fill_version_numbers(apps: Any, schema_editor: Any) -> None:
    Dispatch = apps.get_model("publishing", "Dispatch")
    History = apps.get_model("publishing", "HistoricalPublication")
    for dispatch in Dispatch.objects.all().iterator():
        version = History.objects.filter(history_id=dispatch.version_id).first()
        if version is None:
            number = 1
        else:
            number = History.objects.filter(
                id=version.id, history_id__lte=version.history_id
            ).count()
        Dispatch.objects.filter(pk=dispatch.pk).update(version_number=number)


class Migration(migrations.Migration):
    dependencies = [
        ("publishing", "0005_topic_archived_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="dispatch",
            name="version_number",
            field=models.PositiveIntegerField(default=1, editable=False, verbose_name="version"),
            preserve_default=False,
        ),
        migrations.RunPython(fill_version_numbers, migrations.RunPython.noop),
    ]
