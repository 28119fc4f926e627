"""The publication form's writing tools: the editor's endpoints and who may call them, image
upload into the storage and serving, alt text required, and the preview of every channel from
an unsaved form."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from publishing import rendering, services
from publishing.editor import image_markdown
from publishing.exceptions import InvalidPublicationError
from publishing.models import Publication, Topic
from tests.publishing.conftest import make_publication

MARKDOWNIFY = reverse("admin:publishing_publication_markdownify")
UPLOAD = reverse("admin:publishing_publication_upload")
NEW_PREVIEW = reverse("admin:publishing_publication_form_preview")


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(client: Client, data: bytes, name: str = "photo.png", **extra: Any) -> Any:
    content_type = extra.pop("content_type", "image/png")
    return client.post(
        UPLOAD,
        {"image": SimpleUploadedFile(name, data, content_type=content_type), **extra},
        headers={"x-requested-with": "XMLHttpRequest"},
    )


def _form(topic: Topic, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "Unsaved title",
        "slug": "unsaved-title",
        "summary": "A summary.",
        "body": "# Heading\n\nSome **bold** and a [link](https://example.org/).",
        "topics": [topic.pk],
        "language": "en",
        "change_reason": "",
        "dispatches-TOTAL_FORMS": "0",
        "dispatches-INITIAL_FORMS": "0",
        "dispatches-MIN_NUM_FORMS": "0",
        "dispatches-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


# --- Who may call the editor's endpoints ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", [MARKDOWNIFY, UPLOAD, NEW_PREVIEW])
def test_an_anonymous_visitor_is_sent_to_the_login_page(url: str) -> None:
    response = Client().post(url, {"content": "# Hi"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("url", [MARKDOWNIFY, UPLOAD, NEW_PREVIEW])
def test_staff_without_the_publication_permissions_are_refused(mallory: User, url: str) -> None:
    response = _client(mallory).post(url, {"content": "# Hi", "image": ""})

    assert response.status_code == 403
    assert not default_storage.exists("images")


def test_a_non_staff_user_is_sent_to_the_login_page(db: Any) -> None:
    user = User.objects.create_user("reader", password="x")
    client = Client()
    client.force_login(user)

    assert client.post(MARKDOWNIFY, {"content": "x"}).status_code == 302
    assert client.post(UPLOAD, {}).status_code == 302


def test_the_editor_endpoints_need_the_csrf_token(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    assert client.post(MARKDOWNIFY, {"content": "# Hi"}).status_code == 403
    assert _upload(client, png(10, 10), alt="A dot").status_code == 403


def test_the_editor_endpoints_answer_post_only(alice: User) -> None:
    client = _client(alice)

    assert client.get(MARKDOWNIFY).status_code == 405
    assert client.get(UPLOAD).status_code == 405
    assert client.get(NEW_PREVIEW).status_code == 405


# --- The live preview ----------------------------------------------------------------------------


def test_the_live_preview_is_the_readers_rendering_sanitised(alice: User) -> None:
    body = "# Title\n\n**bold** <script>alert(1)</script> [x](javascript:alert(1))"

    response = _client(alice).post(MARKDOWNIFY, {"content": body})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<script" not in html and 'href="javascript' not in html
    assert html == rendering.markdown_to_html(body)


def test_the_body_field_is_the_markdown_editor(alice: User, draft: Publication) -> None:
    response = _client(alice).get(reverse("admin:publishing_publication_change", args=[draft.pk]))

    page = response.content.decode()
    assert 'class="markdownx publication-editor"' in page
    assert f'data-markdownx-urls-path="{MARKDOWNIFY}"' in page
    assert f'data-markdownx-upload-urls-path="{UPLOAD}"' in page
    assert "markdownx/js/markdownx" in page and "publishing/editor.js" in page
    assert "https://cdn" not in page and "//cdn" not in page


# --- Images --------------------------------------------------------------------------------------


def test_an_uploaded_png_is_resized_stored_and_served(alice: User, settings: Any) -> None:
    settings.IMAGE_MAX_WIDTH = 1600
    client = _client(alice)

    response = _upload(client, png(2400, 1200), alt="A red [square]")

    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["width"], answer["height"]) == (1600, 800)
    url = answer["url"]
    assert url.startswith("/media/images/") and url.endswith(".png")
    assert answer["image_code"] == f"![A red square]({url})"
    served = Client().get(url)  # readers need no session
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert "immutable" in served["Cache-Control"]
    assert served["X-Content-Type-Options"] == "nosniff"
    with Image.open(io.BytesIO(b"".join(served.streaming_content))) as image:
        assert image.size == (1600, 800)
        assert image.getpixel((10, 10)) == (200, 30, 30)


def test_a_jpeg_loses_its_metadata(alice: User) -> None:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    Image.new("RGB", (40, 30), (0, 90, 200)).save(buffer, format="JPEG", exif=exif)
    assert b"SecretCam" in buffer.getvalue()

    response = _upload(
        _client(alice), buffer.getvalue(), "p.jpg", content_type="image/jpeg", alt="Blue"
    )

    url = response.json()["url"]
    assert url.endswith(".jpg")
    stored = default_storage.open(url.removeprefix(django_settings.MEDIA_URL), "rb").read()
    assert b"SecretCam" not in stored


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        (
            "x.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
        ),
        ("x.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png"),
        ("x.png", b"not an image at all", "image/png"),
        ("x.bmp", b"", "image/bmp"),
    ],
)
def test_anything_but_jpeg_png_gif_and_webp_is_refused(
    alice: User, name: str, data: bytes, content_type: str
) -> None:
    if content_type == "image/bmp":
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, format="BMP")
        data = buffer.getvalue()

    response = _upload(_client(alice), data, name, content_type=content_type, alt="x")

    assert response.status_code == 400
    message = response.json()["image"][0]
    if data:
        assert "Only JPEG, PNG, GIF and WebP images are accepted" in message
    assert not default_storage.exists("images")


def test_an_image_over_the_size_limit_is_refused_naming_the_limit(
    alice: User, settings: Any
) -> None:
    settings.IMAGE_UPLOAD_MAX_MB = 1
    # Between the limit and the early refusal's margin (limit + 1 MB): the file is read, judged.
    noisy = Image.frombytes("RGB", (700, 700), (bytes(range(256)) * 5743)[: 700 * 700 * 3])
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG", compress_level=0)
    assert 1024 * 1024 < buffer.tell() < 2 * 1024 * 1024

    response = _upload(_client(alice), buffer.getvalue(), alt="Noise")

    assert response.status_code == 400
    assert response.json()["image"] == [
        f"The image is {buffer.tell() / 1024 / 1024:.1f} MB; the limit is 1 MB."
    ]


def test_a_webp_and_a_gif_are_accepted(alice: User) -> None:
    client = _client(alice)
    for image_format, extension in (("WEBP", ".webp"), ("GIF", ".gif")):
        buffer = io.BytesIO()
        Image.new("RGB", (20, 20), (0, 200, 0)).save(buffer, format=image_format)
        response = _upload(client, buffer.getvalue(), f"i{extension}", alt="Green")
        assert response.status_code == 200, response.content
        url = response.json()["url"]
        assert url.endswith(extension)
        assert Client().get(url)["Content-Type"] == f"image/{extension[1:]}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["images/../secret.png", "other/2026/01/" + "a" * 32 + ".png", "images/x.txt"]
)
def test_only_stored_images_are_served(name: str) -> None:
    default_storage.save("other/2026/01/" + "a" * 32 + ".png", io.BytesIO(png(2, 2)))

    assert Client().get(f"/media/{name}").status_code == 404


def test_image_markdown_keeps_the_alt_text_inside_its_brackets() -> None:
    assert image_markdown("/m/a.png", "A [b]\nc\\") == "![A b c](/m/a.png)"


def test_images_are_absolute_in_emails(alice: User, topic: Topic, settings: Any) -> None:
    settings.SITE_URL = "https://news.example.org"
    url = _upload(_client(alice), png(30, 20), alt="A chart").json()["url"]
    publication = make_publication(by=alice, topics=[topic], body=f"![A chart]({url})")

    email = rendering.render_email(publication)

    assert f'src="https://news.example.org{url}"' in email.html
    assert 'alt="A chart"' in email.html


# --- Alt text required ---------------------------------------------------------------------------


def test_an_image_without_alt_text_is_refused_naming_the_field_and_the_image(
    alice: User, topic: Topic
) -> None:
    with pytest.raises(InvalidPublicationError) as caught:
        make_publication(by=alice, topics=[topic], body="Hi\n\n![](/media/images/a.png)")

    problem = caught.value.problems[0]
    assert problem.field == "body"
    assert problem.code == "image_without_alt"
    assert "/media/images/a.png" in problem.message
    assert not Publication.objects.exists()


def test_the_admin_form_shows_the_missing_alt_text_under_the_body(
    alice: User, topic: Topic
) -> None:
    response = _client(alice).post(
        reverse("admin:publishing_publication_add"),
        _form(topic, body='Hi <img src="https://example.org/a.png">'),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "https://example.org/a.png" in errors["body"][0]
    assert "alt text" in errors["body"][0]
    assert not Publication.objects.exists()


def test_an_image_with_alt_text_is_accepted(alice: User, topic: Topic) -> None:
    publication = make_publication(by=alice, topics=[topic], body="![A cat](/media/images/c.png)")

    assert publication.pk is not None


# --- Preview of every channel from the unsaved form ----------------------------------------------


def test_the_preview_of_a_new_form_saves_nothing(alice: User, topic: Topic) -> None:
    response = _client(alice).post(NEW_PREVIEW, _form(topic, title="Brand *new* <b>idea</b>"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Brand *new* &lt;b&gt;idea&lt;/b&gt;" in page  # the subject, escaped
    assert 'title="Email HTML"' in page
    assert 'data-testid="slack-mockup"' in page and 'data-testid="discord-mockup"' in page
    assert "<strong>bold</strong>" in page  # mrkdwn drawn as formatting
    assert 'class="json-key"' in page
    assert Publication.objects.count() == 0
    assert Publication.history.count() == 0


def test_the_preview_of_a_changed_form_shows_the_changes_and_saves_nothing(
    alice: User, draft: Publication, topic: Topic
) -> None:
    url = reverse("admin:publishing_publication_preview", args=[draft.pk])
    versions = draft.history.count()

    response = _client(alice).post(
        url, _form(topic, slug=draft.slug, title="Retitled", body="New **text**\n\n![](x.png)")
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Retitled" in page and "New" in page
    assert "Saving would refuse this form as it stands" in page
    assert "without alt text" in page
    draft.refresh_from_db()
    assert draft.title == "Spring release"
    assert draft.history.count() == versions


def test_the_preview_is_refused_to_staff_without_permission(
    mallory: User, draft: Publication, topic: Topic
) -> None:
    url = reverse("admin:publishing_publication_preview", args=[draft.pk])

    assert _client(mallory).post(url, _form(topic)).status_code == 403


def test_the_saved_version_preview_still_works(paula: User, draft: Publication) -> None:
    services.update_publication(
        draft,
        services.PublicationInput(
            title="Saved title",
            slug=draft.slug,
            body="Saved *body*",
            topics=list(draft.topics.all()),
        ),
        by=paula,
    )

    page = (
        _client(paula)
        .get(reverse("admin:publishing_publication_preview", args=[draft.pk]))
        .content.decode()
    )

    assert "Saved title" in page
    assert "The last saved version" in page
    assert "<em>body</em>" in page  # in the Discord mock-up


def test_no_unsaved_preview_button_where_the_form_cannot_be_changed(
    alice: User, paula: User, draft: Publication
) -> None:
    services.publish(draft, by=paula)  # Editors change drafts only
    change = reverse("admin:publishing_publication_change", args=[draft.pk])

    read_only = _client(alice).get(change).content.decode()
    editable = _client(paula).get(change).content.decode()

    assert "Preview every channel (not saved)" not in read_only
    assert "Preview the saved version" in read_only
    assert "Preview every channel (not saved)" in editable


def test_an_upload_declaring_a_huge_body_is_refused_before_it_is_read(
    alice: User, settings: Any
) -> None:
    settings.IMAGE_UPLOAD_MAX_MB = 1

    response = _client(alice).generic(
        "POST",
        UPLOAD,
        b"",
        content_type="multipart/form-data; boundary=x",
        headers={"content-length": str(3 * 1024 * 1024)},
    )

    assert response.status_code == 400
    assert response.json() == {"image": ["The image is larger than 1 MB, the limit."]}
