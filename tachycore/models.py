"""The persisted plugin registry."""

from __future__ import annotations

from django.db import models


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
