"""A site for bench/api.py only: production settings plus a bare view. Never deployed."""
