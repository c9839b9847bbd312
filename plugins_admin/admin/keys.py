"""Admin pages: keys."""
