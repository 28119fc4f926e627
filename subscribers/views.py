"""Public pages: sign-up, confirmation, the preference center and unsubscribe.

No login anywhere: the signed token in each link is the credential. Every state change happens
on POST; a GET (what mail scanners do) only shows a page with a button.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from config.ratelimit import ratelimited
from subscribers import display, reader_feedback, services
from subscribers.exceptions import InvalidLinkError
from subscribers.forms import (
    PREFERENCES_FORM_VERSION,
    SIGNUP_FORM_VERSION,
    PreferencesForm,
    SignupForm,
)
from subscribers.limits import signup_retry_after
from subscribers.models import ReaderFeedback, Subscriber, Subscription

logger = logging.getLogger(__name__)

ONE_CLICK_BODY = "One-Click"


def _choose_language(request: HttpRequest) -> str:
    """Honour ?language=xx (the page's language links and the form's hidden field)."""
    wanted = request.GET.get("language") or request.POST.get("language") or ""
    if wanted in {code for code, _ in settings.LANGUAGES}:
        translation.activate(wanted)
        request.LANGUAGE_CODE = wanted
    return translation.get_language() or settings.LANGUAGE_CODE


def _render(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    response = render(
        request,
        f"subscribers/{template}",
        {"site_name": settings.SITE_NAME, **(context or {})},
        status=status,
    )
    # Links carry personal tokens: keep them out of shared caches. (The site-wide
    # Referrer-Policy, same-origin, keeps them out of other sites' logs; "no-referrer" would make
    # browsers send "Origin: null" and fail Django's CSRF origin check.)
    response["Cache-Control"] = "no-store"
    return response


def _link_error(
    request: HttpRequest, error: InvalidLinkError, *, feedback: bool = False
) -> HttpResponse:
    expired = error.code == "expired_link"
    max_age = (
        settings.FEEDBACK_LINK_MAX_AGE_DAYS
        if feedback
        else settings.SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS
    )
    return _render(
        request,
        "link_error.html",
        {"expired": expired, "max_age_days": max_age, "feedback": feedback},
        status=410 if expired else 400,
    )


@require_http_methods(["GET", "HEAD", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    language = _choose_language(request)
    if request.method != "POST":
        return _render(request, "signup.html", {"form": SignupForm(), "language": language})
    form = SignupForm(request.POST)
    retry_after = signup_retry_after(request, request.POST.get("email", "")[:320])
    if retry_after is not None:
        return ratelimited(request, Exception("sign-up rate limit"), retry_after=retry_after)
    thanks = reverse("subscribers:signup_thanks") + f"?language={language}"
    if form.is_bot:
        logger.info("subscribers: honeypot filled on the sign-up page; ignored")
        return HttpResponseRedirect(thanks)
    if not form.is_valid():
        return _render(request, "signup.html", {"form": form, "language": language}, status=400)
    services.sign_up(
        email=form.cleaned_data["email"],
        name=form.cleaned_data["name"],
        topics=list(form.cleaned_data["topics"]),
        locale=language,
        time_zone=form.cleaned_data["timezone"],
        origin=services.Origin.from_request(request, via="page", form_version=SIGNUP_FORM_VERSION),
    )
    return HttpResponseRedirect(thanks)


@require_safe
def signup_thanks(request: HttpRequest) -> HttpResponse:
    _choose_language(request)
    return _render(request, "signup_thanks.html")


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = services.read_confirmation(token)
    except InvalidLinkError as error:
        return _link_error(request, error)
    translation.activate(subscriber.locale)
    if request.method != "POST":
        return _render(request, "confirm.html", {"token": token})
    try:
        subscriber, _changed = services.confirm_subscription(
            token, services.Origin.from_request(request, via="page", form_version="confirm")
        )
    except InvalidLinkError as error:
        return _link_error(request, error)
    manage = services.manage_token_for(subscriber)
    return _render(
        request,
        "confirmed.html",
        {"preferences_url": reverse("subscribers:preferences", args=[manage])},
    )


def _preferences_initial(subscriber: Subscriber) -> dict[str, Any]:
    frequency, paused_until = services.current_frequency(subscriber, timezone.localdate())
    return {
        "name": subscriber.name,
        "topics": list(subscriber.subscriptions.values_list("topic_id", flat=True)),
        "frequency": frequency,
        "paused_until": paused_until,
        "email_format": subscriber.email_format,
        "locale": subscriber.locale,
        "timezone": subscriber.timezone,
        "digest_hour": "" if subscriber.digest_hour is None else str(subscriber.digest_hour),
        "tracking_opt_out": subscriber.tracking_opt_out,
    }


@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = services.access_subscriber(token)
    except InvalidLinkError as error:
        return _link_error(request, error)
    translation.activate(subscriber.locale)
    origin = services.Origin.from_request(
        request, via="preferences", form_version=PREFERENCES_FORM_VERSION
    )
    here = reverse("subscribers:preferences", args=[token])
    form = PreferencesForm(subscriber=subscriber, initial=_preferences_initial(subscriber))
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "save")
        if action == "clear_feedback":
            publication = request.POST.get("publication", "")
            reader_feedback.clear_reader_feedback(
                subscriber, int(publication) if publication.isdigit() else None
            )
            return HttpResponseRedirect(here + "?done=feedback_cleared#feedback")
        if action == "unsubscribe":
            services.unsubscribe(subscriber, origin)
            return HttpResponseRedirect(here + "?done=unsubscribed")
        if action == "resubscribe":
            if services.resubscribe(subscriber, origin):
                return HttpResponseRedirect(here + "?done=resubscribed")
            return HttpResponseRedirect(here)
        form = PreferencesForm(request.POST, subscriber=subscriber)
        if form.is_valid():
            data = form.cleaned_data
            services.update_preferences(
                subscriber,
                topics=list(data["topics"]),
                frequency=data["frequency"],
                paused_until=data["paused_until"],
                email_format=data["email_format"],
                name=data["name"],
                locale=data["locale"],
                time_zone=data["timezone"],
                tracking_opt_out=data["tracking_opt_out"],
                digest_hour=data["digest_hour"],
                origin=origin,
            )
            return HttpResponseRedirect(here + "?done=saved")
        status = 400
    subscriber.refresh_from_db()
    return _render(
        request,
        "preferences.html",
        {
            "form": form,
            "token": token,
            "subscriber": subscriber,
            "done": request.GET.get("done", ""),
            "stored": display.stored_data(subscriber),
            "digest_time": display.digest_time_words(subscriber),
            "is_unsubscribed": subscriber.status == Subscriber.Status.UNSUBSCRIBED,
            "is_pending": subscriber.status == Subscriber.Status.PENDING,
            "paused": Subscription.Frequency.PAUSED.value,
            "feedback": reader_feedback.reader_feedback_of(subscriber),
            "more": ReaderFeedback.Choice.MORE.value,
        },
        status=status,
    )


@require_safe
def preferences_data(request: HttpRequest, token: str) -> HttpResponse:
    """Everything stored about the subscriber, as a JSON download."""
    try:
        subscriber = services.access_subscriber(token)
    except InvalidLinkError as error:
        return _link_error(request, error)
    body = json.dumps(services.export_subscriber_data(subscriber), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="my-subscription-data.json"'
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "HEAD", "POST"])
def erase(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = services.access_subscriber(token)
    except InvalidLinkError as error:
        return _link_error(request, error)
    translation.activate(subscriber.locale)
    if request.method != "POST":
        return _render(request, "erase.html", {"token": token})
    services.erase_subscriber(subscriber, services.Origin(via="preferences"))
    return _render(request, "erased.html")


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button; POST unsubscribes at once (RFC 8058 one-click, or that button).

    CSRF-exempt because mailbox providers POST ``List-Unsubscribe=One-Click`` with no cookie;
    the signed unsubscribe token is what authorises the change. Idempotent. A preference
    token from an older email still shows the page (its button posts to the unsubscribe
    token) but is refused on POST (decision 0072). The pages reached with an unsubscribe token
    do not link to the preference center: that token must not lead to the subscriber's data.
    """
    try:
        subscriber, kind = services.unsubscribe_subscriber(token)
    except InvalidLinkError as error:
        if services.is_forgotten(token):
            # An erased subscriber: nothing is stored, so they are as unsubscribed as can be.
            return _render(request, "unsubscribed.html", {"forgotten": True})
        return _link_error(request, error)
    legacy = kind == services.UnsubscribeLink.LEGACY_MANAGE
    if request.method == "POST" and legacy:
        return _link_error(request, InvalidLinkError("Not an unsubscribe link."))
    translation.activate(subscriber.locale)
    # Only the holder of the preference token (an old email's footer) gets its link back.
    manage = reverse("subscribers:preferences", args=[token]) if legacy else ""
    if request.method != "POST":
        return _render(
            request,
            "unsubscribe.html",
            {
                "token": services.unsubscribe_token_for(subscriber) if legacy else token,
                "preferences_url": manage,
                "subscriber": subscriber,
            },
        )
    one_click = request.POST.get("List-Unsubscribe") == ONE_CLICK_BODY
    services.unsubscribe(
        subscriber,
        services.Origin.from_request(request, via="one-click" if one_click else "unsubscribe-page"),
    )
    return _render(request, "unsubscribed.html", {"preferences_url": manage})


@require_http_methods(["GET", "HEAD", "POST"])
def feedback(request: HttpRequest, token: str, choice: str) -> HttpResponse:
    """A "more like this" / "less like this" link (decision 0080): GET shows the publication
    and a button, changing nothing (mail scanners follow links); the button's POST records the
    choice. No login: the signed, expiring token names the subscriber and the publication. The
    pages do not link to the preference center (the token grants nothing else)."""
    if choice not in ReaderFeedback.Choice.values:
        raise Http404("Unknown feedback choice.")
    try:
        subscriber, publication = reader_feedback.access_feedback(token)
    except InvalidLinkError as error:
        return _link_error(request, error, feedback=True)
    translation.activate(subscriber.locale)
    context = {"token": token, "choice": choice, "publication": publication, "more": "more"}
    if request.method != "POST":
        return _render(request, "feedback_confirm.html", context)
    reader_feedback.record_reader_feedback(subscriber, publication, choice)
    return _render(request, "feedback_recorded.html", context)
