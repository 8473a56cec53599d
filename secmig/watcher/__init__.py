"""secmig inside Watcher: the hotspot strategy (imports watcher only)."""
