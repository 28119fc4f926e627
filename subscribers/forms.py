"""Forms of the public pages: sign-up and the preference center."""

from __future__ import annotations

import zoneinfo
from datetime import date, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from publishing.models import Topic
from subscribers.models import EMAIL_MAX_LENGTH, LAST_HOUR, Subscriber, Subscription

#: Identifies the sign-up page's consent wording; bump it whenever that wording changes, so the
#: consent log tells which text each person agreed to.
SIGNUP_FORM_VERSION = "signup-2026-12"
PREFERENCES_FORM_VERSION = "preferences-2026-12"
NAME_MAX_LENGTH = 200
#: How far ahead a pause may be set.
MAX_PAUSE_DAYS = 366


def public_topics() -> QuerySet[Topic]:
    """The topics the sign-up form and API offer: public and not archived."""
    return Topic.objects.offered().order_by("name")


def valid_timezone(value: str) -> bool:
    return value in zoneinfo.available_timezones()


class SignupForm(forms.Form):
    email = forms.EmailField(
        label=_("Email address"),
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    name = forms.CharField(
        label=_("Name (optional)"),
        max_length=NAME_MAX_LENGTH,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    # Nothing is ticked in advance: a pre-ticked box is not consent (GDPR art. 4(11) and
    # recital 32; CJEU C-673/17 Planet49). Decision 0075.
    topics = forms.ModelMultipleChoiceField(
        label=_("Topics"),
        queryset=Topic.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one topic.")},
    )
    # Filled by a one-line script when the browser has JavaScript; UTC otherwise.
    timezone = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    # Honeypot: hidden from people by CSS, filled by naive bots.
    website = forms.CharField(label=_("Leave this field empty"), required=False, max_length=200)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        topics = self.fields["topics"]
        assert isinstance(topics, forms.ModelMultipleChoiceField)  # noqa: S101
        topics.queryset = public_topics()
        topics.required = public_topics().exists()

    def clean_timezone(self) -> str:
        value: str = self.cleaned_data.get("timezone") or ""
        return value if valid_timezone(value) else "UTC"

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))


FREQUENCY_CHOICES = [
    (Subscription.Frequency.IMMEDIATE.value, _("As soon as something is published")),
    (Subscription.Frequency.DAILY.value, _("Daily digest")),
    (Subscription.Frequency.WEEKLY.value, _("Weekly digest")),
    (Subscription.Frequency.PAUSED.value, _("Paused")),
]
#: "Let us pick" (empty) or a local hour (decision 0081).
DIGEST_HOUR_CHOICES = [
    ("", _("Let us pick: when I usually read our emails")),
    *((str(hour), f"{hour:02d}:00") for hour in range(LAST_HOUR + 1)),
]
FORMAT_CHOICES = [
    (Subscriber.EmailFormat.HTML.value, _("HTML with a plain-text alternative")),
    (Subscriber.EmailFormat.TEXT.value, _("Plain text only")),
]


class PreferencesForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=NAME_MAX_LENGTH, required=False)
    topics = forms.ModelMultipleChoiceField(
        label=_("Topics"),
        queryset=Topic.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    frequency = forms.ChoiceField(
        label=_("How often"), choices=FREQUENCY_CHOICES, widget=forms.RadioSelect
    )
    paused_until = forms.DateField(
        label=_("Paused until (leave empty to pause until you change it)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    email_format = forms.ChoiceField(
        label=_("Email format"), choices=FORMAT_CHOICES, widget=forms.RadioSelect
    )
    locale = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
    timezone = forms.ChoiceField(label=_("Time zone"), choices=())
    digest_hour = forms.TypedChoiceField(
        label=_("Digest time (daily and weekly digests)"),
        choices=DIGEST_HOUR_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        error_messages={
            "invalid_choice": _("Choose an hour from 00:00 to 23:00, or let us pick."),
        },
        widget=forms.Select(attrs={"aria-describedby": "digest-time"}),
    )
    tracking_opt_out = forms.BooleanField(
        label=_("Do not count whether I open your emails or click their links"),
        required=False,
    )

    def __init__(self, *args: Any, subscriber: Subscriber, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        topics = self.fields["topics"]
        assert isinstance(topics, forms.ModelMultipleChoiceField)  # noqa: S101
        topics.queryset = (
            # Offered topics, and the subscriber's own (archived ones included: kept until left).
            Topic.objects.filter(
                Q(is_public=True, archived_at__isnull=True)
                | Q(subscriptions__subscriber=subscriber)
            )
            .distinct()
            .order_by("name")
        )
        zone = self.fields["timezone"]
        assert isinstance(zone, forms.ChoiceField)  # noqa: S101
        zone.choices = [(name, name) for name in sorted(zoneinfo.available_timezones())]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        paused_until: date | None = cleaned.get("paused_until")
        if cleaned.get("frequency") != Subscription.Frequency.PAUSED:
            cleaned["paused_until"] = None
        elif paused_until is not None:
            today = timezone.localdate()
            if paused_until <= today:
                self.add_error("paused_until", _("Choose a date after today."))
            elif paused_until > today + timedelta(days=MAX_PAUSE_DAYS):
                self.add_error(
                    "paused_until",
                    _("A pause can last at most %(days)s days.") % {"days": MAX_PAUSE_DAYS},
                )
        return cleaned
