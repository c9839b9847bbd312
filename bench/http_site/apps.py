from django.apps import AppConfig


class HttpSiteConfig(AppConfig):
    name = "bench.http_site"
    label = "bench_http_site"
