"""Admin pages: jobs."""
