"""plugins_admin: the Django admin pages that run the platform (plugins, jobs, keys, nodes)."""
