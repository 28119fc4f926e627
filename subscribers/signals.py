"""Signals other apps listen to, so that subscribers/ never imports them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent inside the erasure's transaction, before the subscriber row is deleted, with ``email``
#: (the address being erased), ``email_hash`` and ``subscriber_id``. Receivers delete or scrub
#: every copy of the address, and everything else they keep about that subscriber.
subscriber_erased = Signal()
