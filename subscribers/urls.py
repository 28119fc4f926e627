from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from subscribers import api, views

app_name = "subscribers"

urlpatterns: list[URLPattern | URLResolver] = [
    path("subscribe/", views.signup, name="signup"),
    path("subscribe/thanks/", views.signup_thanks, name="signup_thanks"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("preferences/<str:token>/data.json", views.preferences_data, name="preferences_data"),
    path("preferences/<str:token>/erase/", views.erase, name="erase"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("feedback/<str:token>/<str:choice>/", views.feedback, name="feedback"),
    path("api/v1/subscribe", api.SubscribeView.as_view(), name="api_subscribe"),
]
