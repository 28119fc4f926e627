"""Images editors upload into a publication's body: checked, re-encoded, stored, served.

An upload is opened with Pillow and judged by what it is, never by the name or the content type
the browser claims: only JPEG, PNG, GIF and WebP pass (SVG never: it can carry scripts, and
an image in an email or a page must not). Every image is re-encoded, which drops its metadata
(a phone photo's EXIF holds where it was taken), and scaled down to IMAGE_MAX_WIDTH. It goes
into Django's default storage (MEDIA_ROOT by default, a bucket with MEDIA_STORAGE=s3) under a
random name, so a stored image never changes and may be cached for ever. ``serve_image``
streams it back from that storage: WhiteNoise serves static files only, and this is what lets
a plain FileSystemStorage deployment serve its images under gunicorn.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from PIL import Image, ImageOps, UnidentifiedImageError

from publishing.exceptions import FieldProblem, InvalidPublicationError

#: Pillow's format name -> (file extension, content type). Nothing else is accepted.
FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "GIF": ("gif", "image/gif"),
    "WEBP": ("webp", "image/webp"),
}
#: Images are stored under this folder of the storage, and only it is served.
FOLDER = "images"
#: A decoded image larger than this many pixels is refused (a "decompression bomb").
MAX_PIXELS = 40_000_000
JPEG_QUALITY = 85
# The only names serve_image answers for: what store_image writes, nothing else.
_STORED_NAME = re.compile(r"^images/\d{4}/\d{2}/[0-9a-f]{32}\.(jpg|png|gif|webp)$")


@dataclass(frozen=True)
class StoredImage:
    name: str  # the storage's name for it
    url: str  # where browsers fetch it (relative with FileSystemStorage)
    width: int
    height: int


def _problem(code: str, message: str) -> InvalidPublicationError:
    return InvalidPublicationError([FieldProblem("image", code, message)])


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}"


def store_image(upload: IO[bytes], *, size: int) -> StoredImage:
    """Check, re-encode, scale down and store one uploaded image.

    Raises InvalidPublicationError (field "image") naming the limit that was passed: the size
    in megabytes, the accepted formats, the number of pixels, or the width of an animation.
    """
    limit = settings.IMAGE_UPLOAD_MAX_MB * 1024 * 1024
    if size > limit:
        raise _problem(
            "too_large",
            _("The image is %(size)s MB; the limit is %(limit)s MB.")
            % {"size": _megabytes(size), "limit": settings.IMAGE_UPLOAD_MAX_MB},
        )
    try:
        image = Image.open(upload)
        image_format = image.format or ""
        if image.width * image.height > MAX_PIXELS:
            raise _problem(
                "too_many_pixels",
                _("The image is %(width)s by %(height)s pixels; the limit is %(limit)s million.")
                % {"width": image.width, "height": image.height, "limit": MAX_PIXELS // 10**6},
            )
        if image_format not in FORMATS:
            raise UnidentifiedImageError(image_format)
        data, width, height = _reencode(image, image_format, upload)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise _problem(
            "unsupported_format",
            _("Only JPEG, PNG, GIF and WebP images are accepted (not SVG: it can carry scripts)."),
        ) from None
    extension, _content_type = FORMATS[image_format]
    now = timezone.now()
    name = f"{FOLDER}/{now:%Y/%m}/{uuid.uuid4().hex}.{extension}"
    name = default_storage.save(name, ContentFile(data))
    return StoredImage(name=name, url=default_storage.url(name), width=width, height=height)


def _reencode(image: Image.Image, image_format: str, upload: IO[bytes]) -> tuple[bytes, int, int]:
    """The image written anew in its own format, at most IMAGE_MAX_WIDTH wide, no metadata."""
    max_width = settings.IMAGE_MAX_WIDTH
    if getattr(image, "n_frames", 1) > 1:
        # Pillow would keep the first frame only: an animation is stored as uploaded.
        if image.width > max_width:
            raise _problem(
                "animation_too_wide",
                _("The animation is %(width)s pixels wide; the limit is %(limit)s.")
                % {"width": image.width, "limit": max_width},
            )
        upload.seek(0)
        return upload.read(), image.width, image.height
    image = ImageOps.exif_transpose(image) or image
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    options: dict[str, object] = {}
    if image_format == "JPEG":
        image = image.convert("RGB")
        options = {"quality": JPEG_QUALITY, "optimize": True, "progressive": True}
    elif image_format == "WEBP":
        options = {"quality": JPEG_QUALITY}
    elif image_format == "PNG":
        options = {"optimize": True}
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue(), image.width, image.height


@require_safe
def serve_image(request: HttpRequest, name: str) -> FileResponse:
    """`MEDIA_URL<name>`: a stored image, streamed from the default storage.

    Only names store_image writes are served (no other file of the storage, no path tricks),
    with their own content type, never sniffed, and cached for a year: a stored image never
    changes, a new upload gets a new name.
    """
    if not _STORED_NAME.match(name) or not default_storage.exists(name):
        raise Http404("No such image.")
    extension = name.rsplit(".", 1)[1]
    content_type = next(kind for ext, kind in FORMATS.values() if ext == extension)
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
