"""The benchmark's apps: one minimal app per scenario, served unchanged by every server."""
