"""What the fault tests send to the site and read back from its database."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime

#: what a job's errors hold when the database went away under it (psycopg's and Django's words)
CONNECTION_ERRORS = (
    "terminating connection", "server closed the connection", "connection refused", "connection failed",
    "connection is closed", "connection already closed", "consuming input failed", "the database system is",
    "OperationalError", "InterfaceError", "could not receive data", "SSL SYSCALL",
)


def post_json(url: str, body: object, timeout: float = 5) -> tuple[int, object]:
    """POST ``body`` as JSON; the status and the decoded answer (0 and the error when none came)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    return _send(request, timeout)


def put_json(url: str, body: object, timeout: float = 5) -> tuple[int, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    return _send(request, timeout)


def get_json(url: str, timeout: float = 5) -> tuple[int, object]:
    return _send(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout)


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body.decode(errors="replace")[:200]
    except OSError as e:
        return 0, str(e)


def executions(cluster, database: str) -> list[tuple[int, str, int, datetime]]:
    """Every row of ``toolbox_executions``: (job id, worker, pid, began), in the order they began."""
    return cluster.execute(database, "SELECT job_id, worker, pid, began FROM toolbox_executions ORDER BY began")


def jobs_with_connection_errors(cluster, database: str) -> list[tuple[int, str]]:
    """(id, first matching error) of each job whose last_error or errors name a lost connection."""
    rows = cluster.execute(database, "SELECT id, last_error, errors::text FROM _jobs")
    found = []
    for job_id, last_error, errors in rows:
        text = f"{last_error}\n{errors}"
        for words in CONNECTION_ERRORS:
            if words.lower() in text.lower():
                found.append((job_id, words))
                break
    return found
