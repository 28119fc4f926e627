"""Email written as .eml files into a folder (development, demos, archiving).

Each message is written to ``<delivery id>.eml`` through a temporary file and a rename, so a
retried delivery replaces its file instead of adding a second one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from django import forms
from django.conf import settings

from channels.backends.base import Backend, BackendError, Message, Outcome, OutcomeStatus, register
from channels.backends.email_common import message_bytes


class FileConfigForm(forms.Form):
    directory = forms.CharField(
        max_length=500,
        required=False,
        help_text="Folder for the .eml files; empty: EMAIL_OUTBOX_DIR (var/outbox).",
    )
    from_email = forms.CharField(max_length=254, required=False)


@register
class FileBackend(Backend):
    kind = "email_file"
    label = "Email (files in a folder)"
    config_form = FileConfigForm

    @property
    def directory(self) -> Path:
        return Path(self.config.get("directory") or settings.EMAIL_OUTBOX_DIR)

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return [
                Outcome(m.delivery_id, OutcomeStatus.TRANSIENT, error=f"Outbox unusable: {error}")
                for m in batch
            ]
        return [self._write(message) for message in batch]

    def _write(self, message: Message) -> Outcome:
        target = self.directory / f"{message.delivery_id}.eml"
        try:
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(handle, "wb") as file:
                file.write(message_bytes(message, self.config))
            os.replace(temporary, target)
        except OSError as error:
            return Outcome(message.delivery_id, OutcomeStatus.TRANSIENT, error=str(error)[:1000])
        return Outcome(message.delivery_id, OutcomeStatus.SENT, provider_message_id=target.name)

    def check(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BackendError(f"Cannot create {self.directory}: {error}") from error
        if not os.access(self.directory, os.W_OK):
            raise BackendError(f"{self.directory} is not writable.")
