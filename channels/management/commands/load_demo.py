"""Load demonstration data and an admin account (what `make run` does on a fresh machine)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from channels.configuration import save_channel
from channels.models import Channel
from publishing import services as publishing
from publishing.models import Topic
from subscribers.models import ConsentEvent, Subscriber, Subscription

TOPICS = [
    ("Product news", "product-news", "What is new in the product."),
    ("Engineering", "engineering", "How we build it."),
    ("Community", "community", "Events, meetups and people."),
]
SUBSCRIBERS = [
    ("ada@example.com", "Ada Lovelace", ["product-news", "engineering"], "immediate"),
    ("grace@example.com", "Grace Hopper", ["engineering"], "immediate"),
    ("alan@example.com", "Alan Turing", ["product-news", "community"], "immediate"),
    ("katherine@example.com", "Katherine Johnson", ["community"], "weekly"),
    ("edsger@example.com", "Edsger Dijkstra", ["engineering"], "daily"),
]
WELCOME_BODY = """Welcome to the **demo** of the publishing system.

- Editors write in Markdown, preview every channel and publish from the admin.
- Subscribers choose topics and frequency in their preference center.
- Every delivery is recorded in the ledger: see *Deliveries* in the admin.
"""


class Command(BaseCommand):
    help = "Create demo topics, publications, subscribers, an .eml outbox channel and an admin."

    def handle(self, *args: Any, **options: Any) -> None:
        admin = self.ensure_admin()
        if Topic.objects.exists():
            self.stdout.write("Demo data already present: nothing loaded.")
            return
        with transaction.atomic():
            self.load(admin)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data loaded: {len(TOPICS)} topics, 3 publications, "
                f"{len(SUBSCRIBERS)} subscribers, an email channel writing to "
                f"{settings.EMAIL_OUTBOX_DIR}."
            )
        )

    def ensure_admin(self) -> Any:
        user_model = get_user_model()
        existing = user_model.objects.filter(username="admin").first()
        if existing is not None:
            self.stdout.write(
                "The admin account exists; change its password with "
                "`.venv/bin/python manage.py changepassword admin`."
            )
            return existing
        password = secrets.token_urlsafe(12)
        admin = user_model.objects.create_superuser(
            "admin", email="admin@example.com", password=password
        )
        # Shown once: it is stored only as a hash.
        self.stdout.write(
            self.style.WARNING(
                f"\nAdmin account created. User name: admin   Password: {password}\n"
                "This password is shown only once.\n"
            )
        )
        return admin

    def load(self, admin: Any) -> None:
        topics = {
            slug: Topic.objects.create(name=name, slug=slug, description=description)
            for name, slug, description in TOPICS
        }
        outbox = Channel(name="Outbox (.eml files)", kind="email_file", is_default_email=True)
        save_channel(outbox, {"directory": str(settings.EMAIL_OUTBOX_DIR)})

        now = timezone.now()
        for email, name, slugs, frequency in SUBSCRIBERS:
            subscriber = Subscriber.objects.create(
                email=email,
                name=name,
                status=Subscriber.Status.ACTIVE,
                confirmed_at=now,
                source="demo",
            )
            for slug in slugs:
                Subscription.objects.create(
                    subscriber=subscriber, topic=topics[slug], frequency=frequency
                )
            ConsentEvent.objects.create(
                subscriber=subscriber,
                email_hash=subscriber.email_hash,
                action=ConsentEvent.Action.IMPORT,
                form_version="demo",
                detail={"note": "Demo data loaded by manage.py load_demo"},
            )
        Subscriber.objects.create(email="pending@example.com", name="Pending Person", source="demo")

        welcome = publishing.create_publication(
            publishing.PublicationInput(
                title="Welcome to the publishing system",
                slug="welcome",
                summary="A first publication, already sent to the demo subscribers.",
                body=WELCOME_BODY,
                topics=["product-news", "engineering"],
            ),
            by=admin,
        )
        # Sent by the worker that `make run` starts: .eml files appear in the outbox.
        publishing.publish(welcome, by=admin)
        scheduled = publishing.create_publication(
            publishing.PublicationInput(
                title="Community meetup next week",
                slug="community-meetup",
                summary="Scheduled: the worker publishes it when its time comes.",
                body="Join us for talks and coffee. Bring a friend.",
                topics=["community"],
            ),
            by=admin,
        )
        publishing.schedule(scheduled, now + timedelta(days=1), by=admin)
        publishing.create_publication(
            publishing.PublicationInput(
                title="Draft: how our delivery engine works",
                slug="delivery-engine-draft",
                summary="A draft: edit it, preview every channel, then publish.",
                body="## Fan-out\n\nOne SQL statement per dispatch.\n\n## Batches\n\nSKIP LOCKED.",
                topics=["engineering"],
            ),
            by=admin,
        )
