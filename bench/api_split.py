"""Where the API's time goes, in process (no HTTP): run after bench/api.py, on its database.

    python bench/api_split.py

Times the publication list and detail through Django's test client with the production
settings of bench/api.py: the bare view, the API, and the API with DRF's throttles removed.
Best of three runs of 300 requests each.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api import environment  # noqa: E402


def main() -> None:
    os.environ.update(environment())
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,testserver"
    import django

    django.setup()
    from django.test import Client

    from publishing import api as publishing_api
    from publishing.api_keys import create_api_key
    from publishing.models import Publication

    key = create_api_key(name="split", scopes=["publications:read"]).key
    client = Client()
    headers = {"Authorization": f"Bearer {key}"}
    first = Publication.objects.order_by("pk").values_list("pk", flat=True).first()

    def timed(url: str, label: str, count: int = 300) -> None:
        for _ in range(20):
            client.get(url, headers=headers)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(count):
                client.get(url, headers=headers)
            runs.append((time.perf_counter() - start) / count * 1000)
        print(f"| {label} | {min(runs):.2f} |")

    print("| Request | ms per request |\n|---|---:|")
    timed("/bench/bare/publications/", "list, bare view")
    timed("/api/v1/publications/?page_size=50", "list, API")
    timed(f"/bench/bare/publications/{first}/", "detail, bare view")
    timed(f"/api/v1/publications/{first}/", "detail, API")
    publishing_api.PublicationViewSet.throttle_classes = []
    timed("/api/v1/publications/?page_size=50", "list, API without throttles")
    timed(f"/api/v1/publications/{first}/", "detail, API without throttles")


if __name__ == "__main__":
    main()
