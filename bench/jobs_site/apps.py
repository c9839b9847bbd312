from django.apps import AppConfig


class JobsSiteConfig(AppConfig):
    name = "bench.jobs_site"
    label = "bench_jobs_site"
