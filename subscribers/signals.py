"""Signals other apps listen to, so that subscribers/ never imports them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent inside the erasure's transaction with ``email`` (the address being erased) and
#: ``email_hash``. Receivers delete or scrub every copy of the address they keep.
subscriber_erased = Signal()
