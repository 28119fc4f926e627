"""A site for bench/tracking.py only: production settings plus a bare pixel view. Never deployed."""
