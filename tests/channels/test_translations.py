"""Translated publications through the real engine (decision 0082): each reader gets their
language when the publication has it, else the original, exactly once, through a real SMTP
server (aiosmtpd on loopback); the translation sent is the one pinned when publishing."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from collections import Counter
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client

from channels import engagement, tracking
from channels.analytics import analytics
from channels.engine import batches, fanout
from channels.models import Channel, Delivery
from publishing import rendering, services, translations
from publishing.models import Dispatch, Publication, PublicationTranslation, Topic
from publishing.rendering.source import Source
from publishing.translations import TranslationInput
from subscribers.models import Subscriber
from tests.channels.conftest import SmtpSink, add_subscribers, body
from tests.channels.digests_support import (
    DAILY,
    WEDNESDAY,
    listed_titles,
    messages_to,
    publish,
    run,
    subscriber,
)
from tests.factories import PublicationFactory

pytestmark = pytest.mark.django_db

FRENCH = TranslationInput(
    language="fr",
    title="Notes de version de mars",
    summary="Ce qui a changé en mars.",
    body="# Mars\n\nTout est [ici](https://example.com/fr/notes).",
)


def translated_publication(topic: Topic) -> Publication:
    publication = cast(
        Publication,
        PublicationFactory(
            title="March release notes",
            slug="march-release",
            summary="What changed in March.",
            body="# March\n\nAll of it is [here](https://example.com/en/notes).",
            topics=[topic],
        ),
    )
    translations.add_translation(publication, FRENCH, by=None)
    return publication


def readers(topic: Topic) -> tuple[list[Subscriber], list[Subscriber]]:
    french = add_subscribers(topic, 3, prefix="lecteur", locale="fr")
    english = add_subscribers(topic, 3, prefix="reader", locale="en")
    return french, english


def parse(raw: bytes) -> email.message.EmailMessage:
    message: email.message.EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)
    return message


def by_recipient(sink: SmtpSink) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for raw in sink.messages:
        found.setdefault(str(parse(raw)["To"]), []).append(raw)
    return found


def test_french_readers_get_the_french_translation_and_others_the_original_once_each(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publication = translated_publication(topic)
    french, english = readers(topic)
    built: Counter[str] = Counter()
    build_email = rendering.build_email

    def counting(source: Source) -> rendering.EmailTemplate:
        built[source.language] += 1
        return build_email(source)

    monkeypatch.setattr(rendering, "build_email", counting)

    with django_capture_on_commit_callbacks(execute=True):
        dispatch = services.publish(publication, by=None)

    received = by_recipient(sink)
    assert sorted(received) == sorted(r.email for r in french + english)
    assert all(len(messages) == 1 for messages in received.values())
    assert sink.delivery_ids() == dict.fromkeys(
        Delivery.objects.filter(dispatch=dispatch).values_list("pk", flat=True), 1
    )
    for reader in french:
        raw = received[reader.email][0]
        message = parse(raw)
        assert message["Subject"] == "Notes de version de mars"
        text = body(raw, "plain")
        assert text.startswith("Bonjour Reader")
        assert "Ce qui a changé en mars." in text
        assert "http://127.0.0.1:8000/p/march-release/fr/" in text
        assert "https://example.com/fr/notes" in body(raw, "html")
        assert "March release notes" not in text
        assert message["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "Se désabonner" in text
    for reader in english:
        raw = received[reader.email][0]
        assert parse(raw)["Subject"] == "March release notes"
        text = body(raw, "plain")
        assert text.startswith("Hello Reader")
        assert "http://127.0.0.1:8000/p/march-release/\n" in text.replace("\r\n", "\n")
        assert "Notes de version" not in text
    languages = Counter(
        Delivery.objects.filter(dispatch=dispatch).values_list("language", flat=True)
    )
    assert languages == {"fr": 3, "": 3}
    # Rendered once per (version, language), not once per reader.
    assert built == {"en": 1, "fr": 1}


def test_a_dispatch_pins_the_translation_version_so_a_later_edit_reaches_only_a_later_send(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    publication = translated_publication(topic)
    french = add_subscribers(topic, 4, prefix="lecteur", locale="fr")
    Channel.objects.filter(pk=smtp_channel.pk).update(batch_size=1)
    with django_capture_on_commit_callbacks(execute=False):
        dispatch = services.publish(publication, by=None)
    pinned = translations.pinned_versions(publication)
    assert dispatch.translation_versions == pinned
    with django_capture_on_commit_callbacks(execute=False):
        fanout.plan_dispatch(dispatch.pk)
    batches.send_batch(smtp_channel.pk, chain=False)
    assert len(sink.messages) == 1

    # An editor corrects the translation while the dispatch is half sent.
    translation = PublicationTranslation.objects.get(publication=publication)
    corrected = TranslationInput("fr", "Notes de mars (corrigées)", FRENCH.body, FRENCH.summary)
    translations.update_translation(translation, corrected, by=None)
    while batches.send_batch(smtp_channel.pk, chain=False).claimed:
        pass

    subjects = [parse(raw)["Subject"] for raw in sink.messages]
    assert subjects == ["Notes de version de mars"] * len(french)
    # The page shows the correction at once; a deliberate resend sends it.
    page = Client().get("/p/march-release/fr/")
    assert "Notes de mars (corrigées)" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        resend = services.resend(publication, by=None)
    assert resend.translation_versions["fr"] > dispatch.translation_versions["fr"]
    resent = [parse(raw)["Subject"] for raw in sink.messages[len(french) :]]
    assert resent == ["Notes de mars (corrigées)"] * len(french)


def test_a_translation_added_after_publishing_is_not_sent_by_that_dispatch(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    publication = cast(Publication, PublicationFactory(title="Original", topics=[topic]))
    add_subscribers(topic, 2, prefix="lecteur", locale="fr")
    with django_capture_on_commit_callbacks(execute=False):
        dispatch = services.publish(publication, by=None)
    translations.add_translation(publication, FRENCH, by=None)
    with django_capture_on_commit_callbacks(execute=True):
        fanout.plan_dispatch(dispatch.pk)

    assert dispatch.translation_versions == {}
    assert [parse(raw)["Subject"] for raw in sink.messages] == ["Original", "Original"]
    assert set(Delivery.objects.values_list("language", flat=True)) == {""}


def test_a_tracked_translation_counts_its_clicks_on_its_own_links(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    Channel.objects.filter(pk=smtp_channel.pk).update(tracking=True)
    publication = translated_publication(topic)
    (french,), (english,) = (
        add_subscribers(topic, 1, prefix="lecteur", locale="fr"),
        add_subscribers(topic, 1, prefix="reader", locale="en"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.publish(publication, by=None)
    received = by_recipient(sink)
    client = Client(HTTP_USER_AGENT="Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Safari/605")

    def follow(raw: bytes) -> str:
        html = body(raw, "html")
        first = re.search(r'href="(http://127\.0\.0\.1:8000/t/c/[^"]+)"', html)
        assert first is not None
        answer = client.get(urlsplit(first.group(1).replace("&amp;", "&")).path)
        assert answer.status_code == 302
        return str(answer["Location"])

    assert follow(received[french.email][0]) == "https://example.com/fr/notes"
    assert follow(received[english.email][0]) == "https://example.com/en/notes"

    # Classified a minute later: each click counts on the link it followed.
    engagement.classify_pending(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    urls = {link.url for link in analytics(publication.pk).links}
    assert urls == {"https://example.com/fr/notes", "https://example.com/en/notes"}
    # An altered reference (another translation's links) is refused.
    assert tracking.LinkRef.parse("e12t0") is None


def test_an_ab_test_leaves_translated_readers_out_of_the_subjects(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    publication = translated_publication(topic)
    Publication.objects.filter(pk=publication.pk).update(
        subjects=["Subject A", "Subject B"], ab_share=50
    )
    publication.refresh_from_db()
    services.update_publication(
        publication,
        services.PublicationInput(
            title=publication.title,
            slug=publication.slug,
            body=publication.body,
            topics=[topic],
            summary=publication.summary,
            subjects=["Subject A", "Subject B"],
            ab_share=50,
        ),
        by=None,
    )
    add_subscribers(topic, 6, prefix="lecteur", locale="fr")
    add_subscribers(topic, 6, prefix="reader", locale="en")
    with django_capture_on_commit_callbacks(execute=True):
        dispatch = services.publish(publication, by=None)

    rows = Delivery.objects.filter(dispatch=dispatch)
    assert not rows.filter(language="fr").exclude(variant=None).exists()
    for raw in sink.messages:
        message = parse(raw)
        if "lecteur" in str(message["To"]):
            assert message["Subject"] == "Notes de version de mars"
        else:
            assert message["Subject"] in ("Subject A", "Subject B")


def test_broadcast_channels_get_the_original(
    topic: Topic, django_capture_on_commit_callbacks: Any
) -> None:
    Channel.objects.create(name="Hook", kind="webhook", config={"url": "https://example.com/h"})
    publication = translated_publication(topic)
    with django_capture_on_commit_callbacks(execute=False):
        dispatch = services.publish(publication, by=None)
    fanout.plan_dispatch(dispatch.pk)
    row = Delivery.objects.get(dispatch=dispatch, kind=Delivery.Kind.BROADCAST)
    assert row.language == ""


def test_a_french_readers_digest_lists_the_french_title_and_summary(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    french = subscriber(topic, DAILY, "lecteur", locale="fr")
    english = subscriber(topic, DAILY, "reader", locale="en")
    translated = publish(topic, WEDNESDAY - dt.timedelta(hours=3), "Spring release")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "Untranslated news")
    translations.add_translation(
        translated,
        TranslationInput("fr", "Version de printemps", "Le corps.", "Quoi de neuf."),
        by=None,
    )

    run(WEDNESDAY + dt.timedelta(minutes=1))

    (to_french,) = messages_to(sink, french.email)
    text = body(to_french.as_bytes(), "plain")
    assert sorted(listed_titles(text)) == ["Untranslated news", "Version de printemps"]
    assert "Quoi de neuf." in text
    assert f"/p/{translated.slug}/fr/" in text
    assert "Version de printemps" in body(to_french.as_bytes(), "html")
    (to_english,) = messages_to(sink, english.email)
    assert sorted(listed_titles(body(to_english.as_bytes(), "plain"))) == [
        "Spring release",
        "Untranslated news",
    ]


def test_the_deliveries_keep_their_language_for_the_admin(
    topic: Topic, smtp_channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    publication = translated_publication(topic)
    readers(topic)
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    with django_capture_on_commit_callbacks(execute=False):
        dispatch = services.publish(publication, by=admin)
    fanout.plan_dispatch(dispatch.pk)
    assert Dispatch.objects.get(pk=dispatch.pk).translation_versions == {
        "fr": translations.pinned_versions(publication)["fr"]
    }
    assert Delivery.objects.filter(dispatch=dispatch, language="fr").count() == 3


def test_the_language_is_decided_at_fan_out_and_a_deleted_pinned_translation_still_goes(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    publication = translated_publication(topic)
    (reader,) = add_subscribers(topic, 1, prefix="lecteur", locale="fr")
    with django_capture_on_commit_callbacks(execute=False):
        dispatch = services.publish(publication, by=None)
        fanout.plan_dispatch(dispatch.pk)
    updated_at = Publication.objects.get(pk=publication.pk).updated_at
    # After the fan-out: the reader switches to English, the translation is deleted.
    Subscriber.objects.filter(pk=reader.pk).update(locale="en")
    translations.delete_translation(PublicationTranslation.objects.get(), by=None)
    while batches.send_batch(smtp_channel.pk, chain=False).claimed:
        pass

    assert [parse(raw)["Subject"] for raw in sink.messages] == ["Notes de version de mars"]
    # A translation's write is not an edit of the publication.
    assert Publication.objects.get(pk=publication.pk).updated_at == updated_at
