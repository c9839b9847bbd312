"""``manage.py pm``: the plugin manager on the command line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from tachycore.errors import PluginError, RegistryError
from tachycore.management.arguments import json_object, name_the_actions, plugin_names
from tachycore.management.base import KernelCommand
from tachycore.management.tables import dumps, format_table
from tachycore.manager import PluginManager, plugin_manager


class Command(KernelCommand):
    help = "List, add, install, enable, disable, upgrade and remove plugins."
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
        disable = actions.add_parser("disable", help="disable plugins")
        disable.add_argument("names", nargs="+", metavar="name")
        upgrade = actions.add_parser("upgrade", help="migrate a plugin to the version of its code")
        upgrade.add_argument("name")
        remove = actions.add_parser("remove", help="delete a plugin's registry row")
        remove.add_argument("name")
        remove.add_argument("--force", action="store_true", help="disable it first if it is enabled")
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

    def do_enable(self, *, names: list[str], options: str | None, **kwargs: Any) -> None:
        parsed = json_object(options, "--options")
        enabled = self.manager.enable(*names, options=parsed)
        if enabled:
            self.stdout.write(f"Enabled {', '.join(enabled)}.")
        else:
            self.stdout.write(f"Already enabled: {', '.join(names)}.")
        if parsed is not None and names[0] not in enabled:
            self.stdout.write(f"Updated the options of {names[0]}.")

    def do_disable(self, *, names: list[str], **options: Any) -> None:
        disabled = self.manager.disable(*names)
        if disabled:
            self.stdout.write(f"Disabled {', '.join(disabled)}.")
        else:
            self.stdout.write(f"Already disabled: {', '.join(names)}.")

    def do_upgrade(self, *, name: str, **options: Any) -> None:
        old, new = self.manager.upgrade(name)
        if old == new:
            self.stdout.write(f"{name} is already at version {new}.")
        else:
            self.stdout.write(f"Upgraded {name} from {old} to {new}.")

    def do_remove(self, *, name: str, force: bool, **options: Any) -> None:
        self.manager.remove(name, force=force)
        self.stdout.write(f"Removed {name}.")

