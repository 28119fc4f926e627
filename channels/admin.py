from __future__ import annotations

from channels import admin_deliveries  # noqa: F401 (registers the Delivery admin)
