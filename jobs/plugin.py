from tachycore.plugins import Plugin


class JobsPlugin(Plugin):
    """The job queue, a built-in plugin: its HTTP API lives at /api/jobs/ (when enabled)."""

    name = "jobs"
    version = "1.0.0"
    description = "A durable job queue on the site's database, run by manage.py runjobs."
    built_in = True
    off_switch = 'set JOBS = {"DISABLED": True} (or the environment variable JOBS_DISABLED=true) and restart'
    urls = "jobs.api.urls"  # answers 404 unless JOBS["HTTP_ENABLED"] is true
