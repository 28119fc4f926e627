"""Subscribers, subscriptions, consent, suppressions, double opt-in and the preference center."""
