"""Admin pages: plugins."""
