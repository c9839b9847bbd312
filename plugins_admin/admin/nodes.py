"""Admin pages: nodes."""
