from __future__ import annotations

from django.conf import settings
from django.urls import URLPattern, URLResolver, path

from publishing import feeds, images, views

app_name = "publishing"

urlpatterns: list[URLPattern | URLResolver] = [
    path("p/", views.archive_index, name="archive"),
    path("p/<slug:slug>/", views.publication_detail, name="publication_detail"),
    # A translation (decision 0082): the language after the slug, as a path of its own.
    path(
        "p/<slug:slug>/<str:language>/",
        views.publication_translation,
        name="publication_translation",
    ),
    path("topics/<slug:slug>/", views.topic_detail, name="topic_detail"),
    path("feeds/rss/", feeds.rss_feed, name="feed_rss"),
    path("feeds/atom/", feeds.atom_feed, name="feed_atom"),
    path("topics/<slug:slug>/rss/", feeds.rss_feed, name="topic_feed_rss"),
    path("topics/<slug:slug>/atom/", feeds.atom_feed, name="topic_feed_atom"),
    # Uploaded images, from the default storage (publishing.images): under gunicorn too.
    path(f"{settings.MEDIA_URL.strip('/')}/<path:name>", images.serve_image, name="image"),
]
