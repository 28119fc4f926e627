"""manage.py create_api_key --name N --scopes a,b [--owner U] [--expires ISO]: print a new key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from publishing.api_keys import ApiKeyError, create_api_key
from publishing.models import ApiScope


class Command(BaseCommand):
    help = (
        "Create an API key and print it (it is shown only this once). "
        f"Scopes: {', '.join(ApiScope.values)}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="What the key is for.")
        parser.add_argument("--scopes", required=True, help="Comma-separated scopes.")
        parser.add_argument("--owner", help="User name the API acts as (default: the system).")
        parser.add_argument("--expires", help="Expiry, ISO 8601 (UTC when no offset).")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = None
        if options["owner"]:
            try:
                owner = get_user_model().objects.get(username=options["owner"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"owner: no user named {options['owner']!r}.") from None
        expires = None
        if options["expires"]:
            try:
                expires = datetime.fromisoformat(options["expires"])
            except ValueError:
                raise CommandError(
                    f"expires: {options['expires']!r} is not an ISO 8601 date and time."
                ) from None
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        try:
            created = create_api_key(
                name=options["name"], scopes=scopes, owner=owner, expires_at=expires
            )
        except ApiKeyError as error:
            raise CommandError(str(error)) from None
        self.stderr.write(
            f"Created API key {created.api_key.prefix} ({created.api_key.name}) with scopes "
            f"{', '.join(created.api_key.scopes)}. Store it now: it is not shown again."
        )
        self.stdout.write(created.key)
