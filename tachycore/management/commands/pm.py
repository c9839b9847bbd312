"""``manage.py pm``: the plugin manager on the command line."""

from __future__ import annotations

import getpass
import os
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.utils import timezone

from tachycore import governance, services
from tachycore.errors import PluginError, RegistryError
from tachycore.governance import grants
from tachycore.management.arguments import (
    json_object,
    name_the_actions,
    plugin_names,
    positive_duration,
)
from tachycore.management.base import KernelCommand
from tachycore.management.tables import dumps, format_table
from tachycore.manager import PluginManager, plugin_manager


class Command(KernelCommand):
    help = ("List, add, install, enable, disable, reload, upgrade and remove plugins; grant and revoke "
            "capabilities; list the services plugins publish.")
    manager: PluginManager = plugin_manager

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", title="actions", required=True)
        listing = actions.add_parser("list", help="list plugins with their state")
        listing.add_argument("--json", action="store_true", help="print JSON")
        add = actions.add_parser("add", help="record a discovered plugin in the registry")
        add.add_argument("name")
        add.add_argument("--options", help="plugin options as a JSON object")
        install = actions.add_parser("install", help="run a plugin's migrations and install()")
        install.add_argument("name")
        enable = actions.add_parser("enable", help="enable plugins (their dependencies first)")
        enable.add_argument("names", nargs="+", metavar="name")
        enable.add_argument("--options", help="plugin options as a JSON object")
        enable.add_argument("--grant-requested", action="store_true",
                            help="grant what the plugins ask for (Plugin.capabilities) as they are enabled")
        disable = actions.add_parser("disable", help="disable plugins")
        disable.add_argument("names", nargs="+", metavar="name")
        reload = actions.add_parser(
            "reload", help="switch every process to a new instance of a plugin (blue-green); calls "
                           "inside the old one finish there")
        reload.add_argument("name")
        upgrade = actions.add_parser("upgrade", help="migrate a plugin to the version of its code")
        upgrade.add_argument("name")
        upgrade.add_argument("--force", action="store_true",
                             help="upgrade even while live processes run other code of the plugin")
        remove = actions.add_parser("remove", help="delete a plugin's registry row")
        remove.add_argument("name")
        remove.add_argument("--force", action="store_true", help="disable it first if it is enabled")
        grant = actions.add_parser("grant", help="allow a plugin a capability at an access level")
        grant.add_argument("name")
        grant.add_argument("capability", help="storage:sql, storage:sql:<table>, kv, jobs:enqueue, service:<plugin>...")
        grant.add_argument("access", help="READ, WRITE or EXECUTE (a higher level covers the lower ones)")
        grant.add_argument("--expires-in", help="a duration (30m, 12h, 7d); the grant lapses then")
        revoke = actions.add_parser("revoke", help="take a capability away from a plugin")
        revoke.add_argument("name")
        revoke.add_argument("capability")
        listing_grants = actions.add_parser("grants", help="list grants, with what plugins ask for")
        listing_grants.add_argument("name", nargs="?")
        listing_grants.add_argument("--json", action="store_true", help="print JSON")
        listing_services = actions.add_parser(
            "services", help="list the services plugins publish (tachycore.invoke), with their access")
        listing_services.add_argument("--json", action="store_true", help="print JSON")
        name_the_actions(actions)

    def handle(self, *, action: str, **options: Any) -> None:
        plugin_names(*options.get("names", ()), *filter(None, [options.get("name")]))
        try:
            getattr(self, f"do_{action}")(**options)
        except (PluginError, RegistryError) as e:
            raise CommandError(str(e)) from e
        finally:
            self._flush()

    def _flush(self) -> None:
        try:
            self.manager.registry.flush()
        except RegistryError as e:
            raise CommandError(str(e)) from e

    def do_list(self, *, json: bool, **options: Any) -> None:
        plugins = self.manager.list()
        # on stderr, so that the table and the JSON stay as they are
        for name, why in self.manager.registry.invalid_records():
            self.stderr.write(f"warning: registry row {name!r} skipped (fix or delete it by hand): {why}")
        if json:
            self.stdout.write(dumps([info.to_json() for info in plugins]))
            return
        rows = [("NAME", "VERSION", "STATUS", "BUILT-IN", "DEPENDS ON", "PACKAGE")]
        for info in plugins:
            version = info.version
            if info.upgradable:
                version = f"{info.installed_version} -> {info.version}"
            status = info.status + (" (error)" if info.last_error else "")
            rows.append((info.name, version, status, "yes" if info.built_in else "",
                         ", ".join(info.depends_on), info.package_name))
        for line in format_table(rows):
            self.stdout.write(line)
        for info in plugins:
            if info.last_error:
                self.stdout.write(f"{info.name}: last error: {info.last_error}")

    def do_add(self, *, name: str, options: str | None, **kwargs: Any) -> None:
        self.manager.add(name, options=json_object(options, "--options"))
        self.stdout.write(f"Added {name}.")

    def do_install(self, *, name: str, **options: Any) -> None:
        self.manager.install(name)
        self.stdout.write(f"Installed {name}.")

    def do_enable(self, *, names: list[str], options: str | None, grant_requested: bool, **kwargs: Any) -> None:
        parsed = json_object(options, "--options")
        enabled = self.manager.enable(*names, options=parsed, grant_requested=grant_requested,
                                      granted_by=f"pm enable --grant-requested ({_operator()})")
        if enabled:
            self.stdout.write(f"Enabled {', '.join(enabled)}.")
        else:
            self.stdout.write(f"Already enabled: {', '.join(names)}.")
        if parsed is not None and names[0] not in enabled:
            self.stdout.write(f"Updated the options of {names[0]}: every process switches to a new "
                              "instance built with them.")

    def do_disable(self, *, names: list[str], **options: Any) -> None:
        disabled = self.manager.disable(*names)
        if disabled:
            self.stdout.write(f"Disabled {', '.join(disabled)}.")
            for name in disabled:  # what became of the calls inside, when there were some
                drain = self.manager.drains.get(name)
                if drain is not None and drain.calls:
                    self.stdout.write(drain.describe())
        else:
            self.stdout.write(f"Already disabled: {', '.join(names)}.")

    def do_reload(self, *, name: str, **options: Any) -> None:
        generation = self.manager.reload(name)
        self.stdout.write(f"Reloaded {name}: every process switches to instance #{generation}; calls "
                          "inside the old one finish there before its unload().")

    def do_upgrade(self, *, name: str, force: bool, **options: Any) -> None:
        old, new = self.manager.upgrade(name, force=force)
        if old == new:
            self.stdout.write(f"{name} is already at version {new}.")
        else:
            self.stdout.write(f"Upgraded {name} from {old} to {new}.")

    def do_remove(self, *, name: str, force: bool, **options: Any) -> None:
        self.manager.remove(name, force=force)
        self.stdout.write(f"Removed {name}.")


    def do_grant(self, *, name: str, capability: str, access: str, expires_in: str | None, **options: Any) -> None:
        seconds = positive_duration(expires_in, "--expires-in")
        expires_at = timezone.now() + timedelta(seconds=seconds) if seconds else None
        given = grants.grant(name, capability, access, granted_by=f"pm grant ({_operator()})", expires_at=expires_at)
        until = f" until {given.expires_at:%Y-%m-%d %H:%M:%S %Z}" if given.expires_at else ""
        self.stdout.write(f"Granted {name} {given.capability} {given.access.name}{until}.")

    def do_revoke(self, *, name: str, capability: str, **options: Any) -> None:
        if grants.revoke(name, capability):
            self.stdout.write(f"Revoked {capability} from {name}.")
        else:
            raise CommandError(f"{name} holds no grant for {capability} (manage.py pm grants {name} lists them)")

    def do_grants(self, *, name: str | None, json: bool, **options: Any) -> None:
        given = grants.list(name)
        asked = {plugin: governance.requested(code.capabilities) for plugin, code in self.manager.plugins.items()
                 if (name is None or plugin == name) and code.capabilities}
        missing = {plugin: governance.ungranted(plugin, self.manager.plugins[plugin].capabilities) for plugin in asked}
        if json:
            self.stdout.write(dumps({
                "grants": [grant.to_json() for grant in given],
                "requested": {plugin: {c: a.name for c, a in caps.items()} for plugin, caps in asked.items()},
                "ungranted": {plugin: {c: a.name for c, a in caps.items()} for plugin, caps in missing.items() if caps},
            }))
            return
        now = timezone.now()
        rows = [("PLUGIN", "CAPABILITY", "ACCESS", "GRANTED BY", "EXPIRES")]
        for grant in given:
            expires = "" if grant.expires_at is None else (
                f"{grant.expires_at:%Y-%m-%d %H:%M}" + ("" if grant.live(now) else " (lapsed)"))
            rows.append((grant.plugin, grant.capability, grant.access.name, grant.granted_by, expires))
        if len(rows) > 1:
            for line in format_table(rows):
                self.stdout.write(line)
        else:
            self.stdout.write("No grants." if name is None else f"No grants for {name}.")
        for plugin, caps in missing.items():
            for command in governance.grant_commands(plugin, caps):
                self.stdout.write(f"{plugin} asks for, ungranted: {command}")

    def do_services(self, *, json: bool, **options: Any) -> None:
        try:
            found = _services(self.manager)
        except ImproperlyConfigured as e:  # two methods publishing one name (check tachycore.E008)
            raise CommandError(str(e)) from e
        if json:
            self.stdout.write(dumps(found))
            return
        if not found:
            self.stdout.write("No services.")
            return
        rows = [("SERVICE", "ACCESS", "PLUGIN STATE", "PROVIDES")]
        rows += [(entry["id"], entry["access"], entry["state"], ", ".join(entry["provides"])) for entry in found]
        for line in format_table(rows):
            self.stdout.write(line)


def _services(manager: PluginManager) -> list[dict[str, Any]]:
    """Each service of each installed plugin: its id, access, the plugin's state and Protocols."""
    states = {info.name: info.status for info in manager.list()}
    found = []
    for name, plugin in sorted(manager.plugins.items()):
        provides = [f"{protocol.__module__}.{protocol.__qualname__}" for protocol in services.provided(plugin)]
        for published in services.published(type(plugin)).values():
            found.append({"id": f"{name}:{published.name}", "plugin": name, "service": published.name,
                          "method": published.attribute, "access": published.access.name,
                          "state": states.get(name, ""), "enabled": states.get(name) == "enabled",
                          "provides": provides})
    return found


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return f"uid {os.getuid()}"
