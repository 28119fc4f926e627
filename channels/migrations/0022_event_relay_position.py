"""The events relay's position per endpoint (decision 0084). Existing endpoints start at the
horizon: their past events already have their deliveries (written with the events, before the
relay)."""

from typing import Any

from django.db import migrations, models


def start_at_the_horizon(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        else:
            cursor.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM events_event")
        (horizon,) = cursor.fetchone()
    apps.get_model("channels", "WebhookEndpoint").objects.update(relayed_until=horizon)


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0021_delivery_event_partial_index"),
        ("events", "0002_event_relay_position"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="relayed_until",
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(start_at_the_horizon, migrations.RunPython.noop),
    ]
