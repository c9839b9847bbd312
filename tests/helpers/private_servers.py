"""Servers a fault test owns: a PostgreSQL cluster and a Redis it may stop, restart and kill,
so that the machine's shared ones (127.0.0.1:5432, 6379) are never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.processes import free_port, wait_until

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def as_postgres(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a PostgreSQL program as the ``postgres`` user (initdb and the server refuse root)."""
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port, trust auth.

    ``listen`` names the addresses it listens on (they must exist when it starts);
    ``trusted`` adds networks whose clients it trusts (127.0.0.1 always is).
    """

    def __init__(self, listen: tuple[str, ...] = ("127.0.0.1",), trusted: tuple[str, ...] = ()) -> None:
        self.listen = listen
        self.trusted = trusted
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tachybundle-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        shutil.chown(self.dir, "postgres", "postgres")

    def url(self, database: str, host: str = "127.0.0.1") -> str:
        return f"postgres://postgres@{host}:{self.port}/{database}"

    def init(self) -> None:
        done = as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                           "-E", "UTF8", "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        # durability is not what these tests look at: no fsync keeps a restart short
        settings = [f"port = {self.port}", f"listen_addresses = '{','.join(self.listen)}'",
                    f"unix_socket_directories = '{self.dir}'", "fsync = off", "full_page_writes = off",
                    "max_connections = 200"]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n".join(settings) + "\n")
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {network} trust\n" for network in self.trusted)

    def start(self) -> None:
        done = as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                           "start")
        if done.returncode:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self) -> None:
        done = as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast",
                           "-w", "-t", "30", "restart")
        if done.returncode:
            raise RuntimeError(f"pg_ctl restart failed: {done.stderr}{self.log_tail()}")

    def running(self) -> bool:
        return as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status").returncode == 0

    def execute(self, database: str, sql: str, params: tuple = ()) -> list[tuple]:
        """One statement on its own connection (autocommit); the rows it returns."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n" + "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def remove(self) -> None:
        """Stop the server (at once) and delete its directory; safe to call twice."""
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` of its own on a free port, persisting nothing."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if not wait_until(self.answers, timeout=10, interval=0.05):
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except (redis.RedisError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        deadline = time.monotonic() + 5
        while self.answers() and time.monotonic() < deadline:
            time.sleep(0.05)
