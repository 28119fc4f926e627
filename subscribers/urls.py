from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from subscribers import views

app_name = "subscribers"

urlpatterns: list[URLPattern | URLResolver] = [
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
