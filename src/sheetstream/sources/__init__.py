"""Source adapters (file, http_csv, http_json), opened by kind through `registry.open_source(kind, config)`."""
