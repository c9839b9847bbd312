"""A bench-only site for ``bench/http_api.py``: the demo site, both APIs served, and beside them
two plain Django views that make the same store calls as the API endpoints measured
(``GET /api/kv/keys/<key>/``, ``POST /api/jobs/``), with no DRF and no authentication.

The plain views live here, never in the library: an unauthenticated view over the store is
an anchor to measure against, not something a site should serve.
"""
