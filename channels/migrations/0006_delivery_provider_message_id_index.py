"""The index SES feedback looks deliveries up by, built without locking the ledger.

On PostgreSQL, CREATE INDEX CONCURRENTLY: a plain CREATE INDEX would block every write to the
deliveries table (workers recording outcomes) for as long as it takes to index a large ledger.
CONCURRENTLY cannot run inside a transaction, hence ``atomic = False``. Other databases (SQLite
for development) get a plain index. Decision 0043.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """AddIndexConcurrently on PostgreSQL, AddIndex elsewhere."""

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("channels", "0005_ses_feedback"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="delivery",
            index=models.Index(
                condition=~models.Q(provider_message_id=""),
                fields=["provider_message_id"],
                name="delivery_provider_message_id",
            ),
        ),
    ]
