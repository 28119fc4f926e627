"""RSS and Atom feeds (django.contrib.syndication) for everything and per public topic."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.feedgenerator import Atom1Feed, Rss201rev2Feed, SyndicationFeed
from django.views.decorators.http import condition, require_safe

from publishing import rendering
from publishing.models import Publication, Topic
from publishing.views import archive_last_modified, listing_etag

FEED_SIZE = 50


if TYPE_CHECKING:
    BaseFeed = Feed[Publication, Topic | None]
else:
    BaseFeed = Feed


class PublicationsFeed(BaseFeed):
    """Every publication of the public archive; ``get_object`` narrows it to one topic."""

    feed_type: type[SyndicationFeed] = Rss201rev2Feed

    def get_object(self, request: HttpRequest, slug: str | None = None) -> Topic | None:
        if slug is None:
            return None
        return get_object_or_404(Topic.objects.public(), slug=slug)

    def title(self, obj: Topic | None) -> str:
        return f"{settings.SITE_NAME}: {obj.name}" if obj else settings.SITE_NAME

    def link(self, obj: Topic | None) -> str:
        return obj.get_absolute_url() if obj else "/p/"

    def description(self, obj: Topic | None) -> str:
        if obj:
            return obj.description or f"Publications about {obj.name}."
        return f"Every publication of {settings.SITE_NAME}."

    def items(self, obj: Topic | None) -> QuerySet[Publication]:
        public_topics = Prefetch("topics", queryset=Topic.objects.public(), to_attr="public_topics")
        publications = Publication.objects.in_archive().prefetch_related(public_topics)
        if obj is not None:
            publications = publications.filter(topics=obj)
        return publications[:FEED_SIZE]

    def item_title(self, item: Publication) -> str:
        return item.title

    def item_description(self, item: Publication) -> str:
        return rendering.render_body_html(item)

    def item_pubdate(self, item: Publication) -> datetime | None:
        return item.published_at

    def item_updateddate(self, item: Publication) -> datetime:
        return item.updated_at

    def item_categories(self, item: Publication) -> list[str]:
        return [topic.name for topic in getattr(item, "public_topics", [])]


class AtomPublicationsFeed(PublicationsFeed):
    feed_type = Atom1Feed

    def subtitle(self, obj: Topic | None) -> str:
        return self.description(obj)


def _etag(request: HttpRequest, slug: str | None = None) -> str:
    return "feed-" + listing_etag(slug) + "-" + request.path


def _last_modified(request: HttpRequest, slug: str | None = None) -> datetime | None:
    return archive_last_modified()


def _conditional(feed: PublicationsFeed) -> Any:
    view = condition(etag_func=_etag, last_modified_func=_last_modified)(feed)
    return require_safe(view)


rss_feed = _conditional(PublicationsFeed())
atom_feed = _conditional(AtomPublicationsFeed())
