"""Who may do what: WebSocket connection tokens, REST API keys, and the key that seals source credentials at rest."""
