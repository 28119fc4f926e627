"""The subscriber a signed link names: preference-center, unsubscribe and confirmation tokens.

Read-only: each function reads a token (subscribers.tokens) and the row it names, and raises
InvalidLinkError for a forged, altered, expired or outdated link.
"""

from __future__ import annotations

from subscribers import tokens
from subscribers.exceptions import InvalidLinkError
from subscribers.models import Subscriber


def access_subscriber(token: str, *, for_update: bool = False) -> Subscriber:
    """The subscriber a preference-center (manage) token names.

    Raises InvalidLinkError when the token is forged or altered, or names a subscriber who no
    longer exists or whose token_key was rotated. With ``for_update`` the row is locked (the
    caller must be inside a transaction).
    """
    try:
        claims = tokens.read_manage_token(token)
    except tokens.TokenError as exc:
        raise InvalidLinkError("This link is not valid.", code="invalid_link") from exc
    queryset = Subscriber.objects.select_for_update() if for_update else Subscriber.objects.all()
    subscriber = queryset.filter(pk=claims.subscriber_id, token_key=claims.token_key).first()
    if subscriber is None:
        raise InvalidLinkError("This link is no longer valid.", code="invalid_link")
    return subscriber


class UnsubscribeLink:
    """Which kind of token an unsubscribe URL carried (decision 0072)."""

    #: The unsubscribe-only token: the page and the one-click POST.
    UNSUBSCRIBE = "unsubscribe"
    #: A preference (manage) token from an email sent before the unsubscribe token existed:
    #: accepted on the GET page only, whose button posts to a fresh unsubscribe token.
    LEGACY_MANAGE = "legacy-manage"


def unsubscribe_subscriber(token: str) -> tuple[Subscriber, str]:
    """The subscriber an unsubscribe URL's token names, and which kind of token it was.

    Accepts the unsubscribe token, then a manage token (``UnsubscribeLink.LEGACY_MANAGE``):
    the caller must refuse the latter for anything but showing the page. Raises
    InvalidLinkError as ``access_subscriber`` does.
    """
    try:
        claims = tokens.read_unsubscribe_token(token)
        kind = UnsubscribeLink.UNSUBSCRIBE
    except tokens.TokenError:
        try:
            claims = tokens.read_manage_token(token)
        except tokens.TokenError as exc:
            raise InvalidLinkError("This link is not valid.", code="invalid_link") from exc
        kind = UnsubscribeLink.LEGACY_MANAGE
    subscriber = Subscriber.objects.filter(
        pk=claims.subscriber_id, token_key=claims.token_key
    ).first()
    if subscriber is None:
        raise InvalidLinkError("This link is no longer valid.", code="invalid_link")
    return subscriber, kind


def is_forgotten(token: str) -> bool:
    """True when an authentic unsubscribe or manage token names a subscriber who no longer
    exists (erased)."""
    for read in (tokens.read_unsubscribe_token, tokens.read_manage_token):
        try:
            claims = read(token)
        except tokens.TokenError:
            continue
        return not Subscriber.objects.filter(pk=claims.subscriber_id).exists()
    return False


def manage_token_for(subscriber: Subscriber) -> str:
    """The token of the subscriber's preference-center links."""
    return tokens.manage_token(subscriber.pk, subscriber.token_key)


def unsubscribe_token_for(subscriber: Subscriber) -> str:
    """The token of the subscriber's unsubscribe links (it can do nothing else)."""
    return tokens.unsubscribe_token(subscriber.pk, subscriber.token_key)


def read_confirmation(token: str) -> Subscriber:
    """The subscriber a confirmation token names; InvalidLinkError when it is unusable."""
    try:
        claims = tokens.read_confirmation_token(token)
    except tokens.TokenError as exc:
        code = "expired_link" if exc.reason == "expired" else "invalid_link"
        raise InvalidLinkError("This confirmation link cannot be used.", code=code) from exc
    subscriber = Subscriber.objects.filter(
        pk=claims.subscriber_id, token_key=claims.token_key
    ).first()
    if subscriber is None:
        raise InvalidLinkError("This confirmation link is no longer valid.", code="invalid_link")
    return subscriber
