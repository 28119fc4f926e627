"""REST API plumbing shared by every app's API views: errors, conditional requests,
idempotent POSTs, throttles and pagination. Endpoints live in each app's api.py."""
