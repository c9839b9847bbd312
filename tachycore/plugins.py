"""The base class of every plugin: subclass it in an app's ``plugin.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events
from .errors import PluginUnavailable
from .instances import Instances, instances, loading_plugin, on_retire

if TYPE_CHECKING:
    from django.apps import AppConfig
    from django.dispatch import Signal



class Plugin:
    """A unit of the site that can be added, installed, enabled, disabled, upgraded, removed.

    Subclass it in ``<app>/plugin.py``; the kernel finds it at start. Every hook
    is a no-op by default. Hooks that raise roll the operation back. The hooks
    run in this order (see docs/plugins.md):

    * ``add``: ``after_add``
    * ``install``: the app's migrations, then ``install``
    * ``enable``: install when needed, then ``before_enable``, ``before_load``,
      ``load``, ``after_enable`` (dependencies first)
    * ``disable``: ``before_disable``, ``after_disable`` (dependents first)
    * ``upgrade``: the app's migrations, then ``upgrade(from_version)``
    * ``remove``: ``before_remove``, ``after_remove``
    * at start of each process, for each enabled plugin: ``before_load`` for
      all, then ``load`` for all (dependencies first)
    * ``reload`` (and a change of options), in every process: a new instance, its
      ``before_load`` and ``load``, the switch; the old instance's ``unload`` once the calls
      inside it have returned
    * ``disable``, once the calls inside have returned: ``after_disable``, then ``unload``
      (``unload`` in every process)

    The kernel keeps one *instance* (an object of this class) per enabled plugin per process
    and builds a new one at each reload (:meth:`new_instance`): keep per-instance state on
    ``self`` and set it up in ``load``, not in ``__init__``.
    """

    #: unique name; defaults to the app label
    name: str = ""
    version: str = "0.1.0"
    description: str = ""
    #: added, installed and enabled automatically; cannot be disabled or removed
    built_in: bool = False
    #: for a built-in plugin, how a site turns it off instead (``pm disable`` says so)
    off_switch: str = ""
    #: names of plugins that must be enabled before this one
    depends_on: tuple[str, ...] | list[str] = ()
    #: dotted urlconf mounted at ``/api/<name>/`` while the plugin is enabled
    urls: str | None = None
    #: options a plugin has before the site sets any
    default_options: dict[str, Any] = {}
    #: what the plugin asks to be allowed, e.g. ``{"storage:sql": "WRITE", "jobs:enqueue":
    #: "EXECUTE"}``; asking grants nothing (see ``tachycore.governance``)
    capabilities: dict[str, str] = {}
    #: the ``typing.Protocol`` classes the plugin implements with its services
    #: (``@tachycore.service`` methods named as the Protocol's): ``tachycore.get_service``
    #: finds the plugin by them
    provides: tuple[type, ...] = ()

    def __init__(self, app_config: AppConfig | None = None) -> None:
        self.app_config = app_config
        if not self.name:
            self.name = app_config.label if app_config else type(self).__name__.lower()
        self.options: dict[str, Any] = dict(self.default_options)
        # set by the plugin manager that takes this plugin (``attach``): how to ask its state
        self._state_of: Callable[[str], bool] | None = None
        # the attributes as built, before any hook ran: what a new instance starts from
        self._pristine: dict[str, Any] | None = None
        # where calls into this plugin take their reference (its manager's, set by ``attach``)
        self._instances: Instances = instances
        # whether this object was loaded as an instance once (a later one is a new object)
        self._instance_used = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version}>"

    @property
    def package_name(self) -> str:
        """The importable package the plugin lives in."""
        return self.app_config.name if self.app_config else type(self).__module__

    @property
    def app_label(self) -> str | None:
        return self.app_config.label if self.app_config else None

    def validate_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise options before they are stored; raise ``ValueError`` to refuse."""
        return options

    def attach(self, is_enabled: Callable[[str], bool], own_instances: Instances | None = None) -> None:
        """Called by the plugin manager that owns this plugin with its ``is_enabled`` and the
        instances it keeps."""
        self._state_of = is_enabled
        if own_instances is not None:
            self._instances = own_instances
        self._pristine = {key: value for key, value in vars(self).items() if key != "_pristine"}

    def new_instance(self) -> Plugin:
        """A new object of this plugin for a reload: the attributes as ``__init__`` built them
        (before any hook ran) and the default options. Override when that is not enough."""
        fresh = object.__new__(type(self))
        fresh.__dict__.update(self._pristine if self._pristine is not None else vars(self))
        fresh._pristine = self._pristine
        fresh.options = dict(self.default_options)
        return fresh

    def is_enabled(self) -> bool:
        """Whether the plugin is enabled now, as its manager last saw the registry
        (``False`` for a plugin no manager has taken)."""
        return self._state_of is not None and self._state_of(self.name)

    def connect(self, signal: Signal, receiver, sender: Any = None, dispatch_uid: str | None = None):
        """Connect ``receiver`` to ``signal`` so that it runs only while this plugin is enabled,
        as this plugin (``tachycore.context.current_plugin()``), inside its active instance.

        Connected while this instance loads (in ``load()``, the place for it), the receiver is
        the instance's own: it runs only while this instance is the active one, and it is
        disconnected when the instance retires (a reload's new instance connects its own).
        """
        name = self.name
        owned = loading_plugin() is self

        def gated(*args: Any, **kwargs: Any) -> Any:
            if self._state_of is not None and loading_plugin() is None:
                self._state_of(name)  # a state check when one is due
            try:
                inside = self._instances.entered(name)
            except PluginUnavailable:
                return None  # disabled (or draining out): skipped
            with inside as live:
                if owned and live is not self:
                    return None  # another instance's receiver: that one runs its own
                return receiver(*args, **kwargs)

        gated.__wrapped__ = receiver  # type: ignore[attr-defined]
        uid = dispatch_uid or f"tachycore:{self.name}:{receiver.__module__}.{receiver.__qualname__}"
        if owned:  # one connection per instance: each reload's instance connects its own
            uid = f"{uid}:instance-{id(self)}"
            self._connections = [*getattr(self, "_connections", ()), (signal, uid, sender)]
        signal.connect(gated, sender=sender, weak=False, dispatch_uid=uid)
        return gated

    def subscribe(self, name: str, handler: Callable[[events.Event], Any]) -> events.Subscription:
        """Run ``handler(event)`` for each event ``name`` published (``tachycore.events``), as
        this plugin, inside its active instance, while it is enabled.

        Subscribe in ``load()``: the subscription then belongs to the instance being loaded and
        goes when it retires (a reload's new instance subscribes in its own ``load()``; a
        disable removes it in every process). Made anywhere else, it stays, skipped while the
        plugin is disabled; its handler should then be a function, not a method of this object
        (a reload replaces the object)."""
        return events.subscribe(name, handler, plugin=self)

    def publish(self, payload: Any) -> None:
        """Send a sync message to this plugin in every other process (after commit);
        it arrives in their ``handle_sync_message``."""
        from . import sync  # here: plugin modules import this one before the models are ready

        sync.publish(f"plugin:{self.name}", payload)

    # -- lifecycle hooks (no-ops) --------------------------------------------------------

    def before_load(self) -> None:
        """Before ``load``, in every process where the plugin is enabled."""

    def load(self) -> None:
        """Make the plugin live in this process (subscribe to events, register things, warm
        caches); what it subscribes belongs to this instance and goes when it retires."""

    def unload(self) -> None:
        """Undo ``load`` in this process: this instance takes no more calls (a reload replaced
        it, or the plugin was disabled) and the last call inside it has returned."""

    def install(self) -> None:
        """Create what the plugin needs (data, defaults); must be safe to run twice."""

    def after_add(self) -> None:
        """After the plugin was recorded in the registry."""

    def before_enable(self) -> None:
        """Before the plugin is marked enabled; raise to refuse."""

    def after_enable(self) -> None:
        """After the plugin is enabled and loaded; raising rolls the enable back."""

    def before_disable(self) -> None:
        """Before the plugin is marked disabled; raise to refuse."""

    def after_disable(self) -> None:
        """After the plugin was marked disabled."""

    def before_remove(self) -> None:
        """Before the plugin's registry row is deleted; raise to refuse."""

    def after_remove(self) -> None:
        """After the plugin's registry row was deleted. Its tables are kept."""

    def upgrade(self, from_version: str) -> None:
        """Migrate the plugin's data from ``from_version`` to ``self.version``."""

    def handle_sync_message(self, message: Any) -> None:
        """A sync message for this plugin from another process."""


def _disconnect_retired(instance: Any) -> None:
    """An instance retired: the receivers it connected while it loaded go with it."""
    for signal, uid, sender in getattr(instance.plugin, "_connections", ()):
        signal.disconnect(sender=sender, dispatch_uid=uid)


on_retire(_disconnect_retired)
