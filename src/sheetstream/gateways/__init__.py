"""Gateways adapters: deliver encoded messages to WebSocket connections (local sockets, or a managed service)."""
