"""The persisted plugin registry."""

from __future__ import annotations

from django.db import models
from django.db.models import JSONField, Value


class ApplicationPlugin(models.Model):
    """One plugin known to the site: its package, version and lifecycle state."""

    name = models.CharField(max_length=100, unique=True)
    package_name = models.CharField(max_length=255, blank=True)
    version = models.CharField(max_length=50, blank=True)
    enabled = models.BooleanField(default=False)
    installed = models.BooleanField(default=False)
    built_in = models.BooleanField(default=False)
    options = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    #: raised by ``pm reload`` and by a change of options: each process whose instance of
    #: the plugin is older builds a new one and switches to it (blue-green)
    generation = models.PositiveIntegerField(default=0, db_default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "applicationPlugins"
        ordering = ["name"]
        verbose_name = "plugin"

    def __str__(self) -> str:
        return self.name


class RegistryState(models.Model):
    """A single row whose ``version`` rises with every registry write.

    Processes compare it with the version they loaded to learn, with one cheap
    query, that plugin state changed elsewhere.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)

    class Meta:
        db_table = "tachycore_registry_state"

    def __str__(self) -> str:
        return f"registry version {self.version}"


class SiteState(models.Model):
    """A single row: the site's maintenance mode, with a version raised on every change."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)
    maintenance = models.BooleanField(default=False)
    message = models.TextField(blank=True)
    changed = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tachycore_site_state"

    def __str__(self) -> str:
        return "maintenance" if self.maintenance else "running"


class NodeStatus(models.TextChoices):
    INITIALIZING = "initializing"
    RUNNING = "running"
    COMMANDING = "commanding"
    MAINTAINING = "maintaining"
    STOPPED = "stopped"
    ERROR = "error"


class Node(models.Model):
    """One process of the site (web worker, command, dispatcher), kept alive by heartbeats."""

    id = models.CharField(max_length=64, primary_key=True)
    kind = models.CharField(max_length=20)
    name = models.CharField(max_length=200, blank=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    status = models.CharField(max_length=20, choices=NodeStatus.choices, default=NodeStatus.INITIALIZING)
    started = models.DateTimeField()
    heartbeat = models.DateTimeField(db_index=True)
    #: the maintenance state this process has picked up
    maintenance = models.BooleanField(default=False)
    #: the newest errors first: [{"at": iso time, "message": text}, ...]
    last_errors = models.JSONField(default=list, blank=True)
    #: the version of each plugin whose code this process runs: {"notes": "1.0.0", ...}
    code_versions = models.JSONField(default=dict, db_default=Value({}, JSONField()), blank=True)
    #: this process's plugin instances: {"notes": {"generation": 3, "calls": 1, "draining": 1}, ...}
    instances = models.JSONField(default=dict, db_default=Value({}, JSONField()), blank=True)

    class Meta:
        db_table = "tachycore_nodes"
        ordering = ["kind", "hostname", "pid"]

    def __str__(self) -> str:
        return f"{self.kind} {self.hostname}:{self.pid}"


class Access(models.IntegerChoices):
    """How much a capability allows; a higher level covers the lower ones."""

    NONE = 0, "none"
    READ = 1, "read"
    WRITE = 2, "write"
    EXECUTE = 3, "execute"


class CapabilityGrant(models.Model):
    """What a plugin may do: one capability at one access level, given by an operator."""

    plugin = models.CharField(max_length=100)
    #: ``storage:sql``, ``storage:sql:<table>``, ``storage:sql:*``, ``kv``, ``jobs:enqueue``,
    #: ``service:<plugin>``, ``service:<plugin>:<name>``
    capability = models.CharField(max_length=200)
    access = models.PositiveSmallIntegerField(choices=Access.choices)
    #: who gave it: ``pm grant (user)``, ``admin (user)``, ``settings``, ...
    granted_by = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    #: none: until revoked
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tachycore_grants"
        ordering = ["plugin", "capability"]
        constraints = [models.UniqueConstraint(fields=["plugin", "capability"], name="tachycore_grant_once")]
        verbose_name = "capability grant"

    def __str__(self) -> str:
        return f"{self.plugin}: {self.capability} {Access(self.access).label}"


class GrantsState(models.Model):
    """A single row whose ``version`` rises with every change of the grants."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)

    class Meta:
        db_table = "tachycore_grants_state"

    def __str__(self) -> str:
        return f"grants version {self.version}"


class AuditDecision(models.TextChoices):
    """What an audit row records: a check's answer, or how an operation ended."""

    #: a check that let the call through; a grant change or plugin operation that was done
    ALLOWED = "allowed", "allowed"
    #: a check that refused the call (enforce mode); a plugin operation refused by governance
    DENIED = "denied", "denied"
    #: a check that would have refused the call and let it through (audit mode)
    WOULD_DENY = "would_deny", "would deny"
    #: a plugin operation that raised for another reason (bad state, a hook failed)
    FAILED = "failed", "failed"


class AuditEvent(models.Model):
    """One entry of the audit trail: a governance decision, a grant change or a plugin
    operation. Written by ``tachycore.audit`` (never edited), pruned after ``AUDIT_RETENTION``."""

    at = models.DateTimeField(db_index=True)
    #: the supervisor node id of the process that recorded it
    node = models.CharField(max_length=64, blank=True)
    #: the plugin the decision or operation is about ("" for several at once)
    plugin = models.CharField(max_length=100, blank=True)
    capability = models.CharField(max_length=200, blank=True)
    access = models.PositiveSmallIntegerField(choices=Access.choices, default=Access.NONE)
    decision = models.CharField(max_length=20, choices=AuditDecision.choices)
    #: ``sql``, ``kv.set``, ``jobs.enqueue``, ``service``..., ``pm.enable``..., ``grant``, ``revoke``
    action = models.CharField(max_length=50)
    #: the table, key, topic or plugins concerned
    target = models.CharField(max_length=255, blank=True)
    detail = models.TextField(blank=True)
    #: the W3C trace id (32 hex digits) the event happened in; "" outside any trace
    trace_id = models.CharField(max_length=32, blank=True)
    #: the id of the signed-in user of the request, when known (an admin action, an API call)
    user_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "tachycore_audit"
        ordering = ["-at", "-id"]
        verbose_name = "audit event"
        indexes = [
            models.Index(fields=["plugin", "at"], name="tachycore_audit_plugin"),
            models.Index(fields=["decision", "at"], name="tachycore_audit_decision"),
            models.Index(fields=["trace_id"], name="tachycore_audit_trace"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.plugin or '-'} {self.action} {self.decision}"
