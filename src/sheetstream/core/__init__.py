"""The pure core: data model, diff, apply, versioning, the WebSocket protocol session. No I/O, no asyncio, no clock."""
