from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from channels import views

app_name = "channels"

urlpatterns: list[URLPattern | URLResolver] = [
    path("metrics", views.metrics, name="metrics"),
    path("hooks/ses/", views.ses_feedback, name="ses-feedback"),
    path("t/o/<int:delivery_id>/<slug:signature>.gif", views.tracking_open, name="tracking-open"),
    path(
        "t/c/<int:delivery_id>/<slug:ref>/<int:index>/<slug:signature>",
        views.tracking_click,
        name="tracking-click",
    ),
]
