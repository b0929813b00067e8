"""Buses adapters, chosen by URL scheme or kind."""
