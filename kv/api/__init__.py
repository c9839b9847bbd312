"""The HTTP API of the key-value store (Django REST framework), mounted at ``/api/kv/``.

Off unless ``KV["HTTP_ENABLED"]`` is true; see docs/kv-api.md.
"""
