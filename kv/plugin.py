from tachycore.plugins import Plugin


class KVPlugin(Plugin):
    """The key-value store, a built-in plugin: its HTTP API lives at /api/kv/ (when enabled)."""

    name = "kv"
    version = "1.0.0"
    description = "A Redis-like key-value store on the site's database, with an in-process L1 cache."
    built_in = True
    off_switch = 'set KV = {"DISABLED": True} (or the environment variable KV_DISABLED=true) and restart'
    urls = "kv.api.urls"  # answers 404 unless KV["HTTP_ENABLED"] is true
