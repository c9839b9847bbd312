"""A registry in one JSON file: for sites without a database table for it."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from django.utils import timezone

from tachycore.errors import (
    InvalidPluginName,
    InvalidRecord,
    InvalidRegistryFile,
    PluginAlreadyExists,
    PluginNotFound,
    RegistryError,
    RegistryPathError,
)

from .base import BasePluginRegistry, PluginRecord, check_changes, stamp_new
from .validation import check_name, describe

logger = logging.getLogger("tachycore.registry")

#: neither the file nor its lock is opened through a symbolic link (nor blocks on a FIFO)
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class JSONFileRegistry(BasePluginRegistry):
    """Records in ``{"version": n, "plugins": [...]}`` at ``path``, an absolute path.

    Writers of every process take an exclusive ``flock`` on ``<path>.lock``;
    the file is replaced atomically, so a reader never sees half a write, and
    the new file keeps the mode of the one it replaces (and its owner and group
    when this process may set them). Neither file is opened through a symbolic
    link. Every record is checked when the file is read: a file that breaks the
    rules is refused as a whole with :class:`InvalidRegistryFile` naming the
    record and the field, and is never written over.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_absolute():
            # resolved against each process's working directory, `pm list` run elsewhere
            # would read another (empty) file and show every plugin as not added
            raise RegistryPathError(
                f'TACHYCORE["REGISTRY"]: the JSON file registry needs an absolute PATH, got '
                f"{str(path)!r}: a relative one would name another file in each directory a "
                "process starts in")

    # -- the file --------------------------------------------------------------------------

    def _read(self) -> tuple[int, dict[str, PluginRecord]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | _OPEN_FLAGS)
        except FileNotFoundError:
            return 0, {}
        except OSError as e:
            raise RegistryError(_cannot("read", self.path, e)) from e
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise RegistryError(f"cannot read the plugin registry {self.path}: not a regular file")
            try:
                data = f.read()
            except OSError as e:
                raise RegistryError(_cannot("read", self.path, e)) from e
        return parse_registry(data, self.path)

    def _write(self, version: int, records: dict[str, PluginRecord]) -> None:
        data = {"version": version, "plugins": [records[name].to_json() for name in sorted(records)]}
        text = json.dumps(data, indent=2)
        try:
            old: os.stat_result | None = os.lstat(self.path)
        except FileNotFoundError:
            old = None
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        # 0o666 less the umask, as for any new file; a file already there lends its own mode
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o666)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                if old is not None:
                    self._keep_owner_and_mode(f.fileno(), old)
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _sync_directory(self.path.parent)

    def _keep_owner_and_mode(self, fd: int, old: os.stat_result) -> None:
        """Give the new file the old one's owner, group and mode, as far as this process may."""
        new = os.fstat(fd)
        if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
            try:
                os.fchown(fd, old.st_uid, old.st_gid)  # only root may give a file away
            except PermissionError:
                try:
                    os.fchown(fd, -1, old.st_gid)  # a member of the group may keep the group
                except PermissionError:
                    logger.warning("plugin registry %s: the rewritten file belongs to group %s, "
                                   "not %s as before (this process may not set it)",
                                   self.path, new.st_gid, old.st_gid)
        os.fchmod(fd, stat.S_IMODE(old.st_mode))  # after fchown, which clears setgid bits

    @contextlib.contextmanager
    def _locked(self):
        lock_path = Path(f"{self.path}.lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _OPEN_FLAGS, 0o666)
        except OSError as e:
            raise RegistryError(_cannot("lock", lock_path, e)) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            version, records = self._read()
            yield records
            try:
                self._write(version + 1, records)
            except OSError as e:
                raise RegistryError(_cannot("write", self.path, e)) from e
        finally:
            os.close(fd)  # releases the lock

    # -- the interface -----------------------------------------------------------------------

    def list(self) -> list[PluginRecord]:
        records = self._read()[1]
        return [records[name] for name in sorted(records)]

    def get(self, name: str) -> PluginRecord | None:
        return self._read()[1].get(name) if isinstance(name, str) else None

    def add(self, record: PluginRecord) -> PluginRecord:
        record.check()
        with self._locked() as records:
            if record.name in records:
                raise PluginAlreadyExists(record.name)
            records[record.name] = stamp_new(record)
        return records[record.name].copy()

    def update(self, name: str, **changes: Any) -> PluginRecord:
        check_changes(name, changes)
        with self._locked() as records:
            if name not in records:
                raise PluginNotFound(name)
            records[name] = dataclasses.replace(records[name], **changes, updated=timezone.now())
        return records[name].copy()

    def remove(self, name: str) -> None:
        check_name(name)
        with self._locked() as records:
            if records.pop(name, None) is None:
                raise PluginNotFound(name)

    def restore(self, name: str, record: PluginRecord | None) -> None:
        """Put the record back exactly as given (``None``: absent)."""
        check_name(name)
        if record is not None:
            record.check()
        with self._locked() as records:
            if record is None:
                records.pop(name, None)
            else:
                records[name] = record.copy()

    def version(self) -> int:
        return self._read()[0]


def parse_registry(data: bytes, path: Path) -> tuple[int, dict[str, PluginRecord]]:
    """The version and the records of a registry file's bytes; :class:`InvalidRegistryFile`
    naming ``path`` and what is wrong (the record and field) for anything else."""

    def invalid(why: str) -> InvalidRegistryFile:
        return InvalidRegistryFile(f"the plugin registry {path} is not valid: {why}")

    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as e:
        raise invalid(f"it is not UTF-8 text ({e})") from None
    except RecursionError:
        raise invalid("its JSON nests too deeply to read") from None
    except ValueError as e:
        raise invalid(f"it is not JSON ({e})") from None
    if not isinstance(document, dict) or set(document) != {"version", "plugins"}:
        raise invalid('it must be a JSON object with the keys "version" and "plugins" only')
    version, items = document["version"], document["plugins"]
    if type(version) is not int or version < 0:
        raise invalid(f'"version" must be a whole number of at least 0, got {describe(version)}')
    if not isinstance(items, list):
        raise invalid('"plugins" must be a list of records')
    records: dict[str, PluginRecord] = {}
    for index, item in enumerate(items):
        try:
            record = PluginRecord.from_json(item)
        except (InvalidPluginName, InvalidRecord) as e:
            raise invalid(f"plugins[{index}]: {e}") from None
        if record.name in records:
            raise invalid(f"plugins[{index}]: plugin {record.name!r} is listed twice")
        records[record.name] = record
    return version, records


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _cannot(verb: str, path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return (f"cannot {verb} the plugin registry: {path} is a symbolic link, which the registry "
                "does not follow (set PATH to the real file)")
    return f"cannot {verb} the plugin registry {path}: {error.strerror or error}"


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (the directory entry), where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
