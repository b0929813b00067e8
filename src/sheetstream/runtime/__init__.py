"""The runtime: the monitor, the dispatcher, the server and their wiring from settings."""
