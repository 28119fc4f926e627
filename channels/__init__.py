"""Channels, their backends, deliveries and the delivery engine."""
