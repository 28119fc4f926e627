from __future__ import annotations

from django.urls import URLPattern, URLResolver

app_name = "publishing"

urlpatterns: list[URLPattern | URLResolver] = []
