from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "demo.audit"
    label = "audit"
    verbose_name = "Audit log (demo plugin)"
