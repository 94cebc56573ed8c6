"""The lab runner: everything long-running (watchers, observers, consumer processes)."""
