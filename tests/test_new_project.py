"""The README's "Add the apps" path, followed word for word in a new ``startproject``.

The snippets are read from README.md itself (between its ``<!-- snippet ...: begin -->``
and ``end`` markers), so a README that drifts from what works fails here. The project
lives in a temporary directory, on its own SQLite file, and finds this checkout's
apps through ``PYTHONPATH``; nothing here touches the test database.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DJANGO_ADMIN = Path(sys.executable).parent / "django-admin"

SHOP_PLUGIN = '''\
from tachycore.plugins import Plugin


class ShopPlugin(Plugin):
    name = "shop"
    version = "1.0.0"
    description = "The plugin of a new project."
'''

SHOP_JOBS = '''\
import jobs


@jobs.handler("shop.send_receipt")
def send_receipt(job):
    return {"sent": job.payload["order"]}
'''

ENQUEUE = 'import jobs; print(jobs.get_job_store().enqueue("shop.send_receipt", {"order": 42}).pk)'


def readme_snippet(name: str) -> str:
    """The Python block of README.md between ``<!-- snippet NAME: begin -->`` and its end."""
    readme = (ROOT / "README.md").read_text()
    marker = re.escape(name)
    found = re.search(rf"<!-- snippet {marker}: begin -->\n```python\n(.*?)```\n"
                      rf"<!-- snippet {marker}: end -->", readme, re.DOTALL)
    assert found, f"README.md has no python block between the markers of snippet {name!r}"
    return found.group(1)


def project_env() -> dict[str, str]:
    """This interpreter's environment, minus what points at the test suite's own site."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST", "TACHYCORE_", "KV_", "JOBS_"))
           and key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=cwd, env=project_env(), capture_output=True,
                          text=True, timeout=60)


def manage(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = run(cwd, sys.executable, "manage.py", *args)
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def new_project(tmp_path_factory) -> Path:
    """A ``startproject`` with the README's snippets, an app ``shop`` with a plugin and a
    job handler, migrated, and ``shop`` enabled as the README says."""
    path = tmp_path_factory.mktemp("new_project")
    created = run(path, str(DJANGO_ADMIN), "startproject", "mysite", ".")
    assert created.returncode == 0, created.stderr
    settings = path / "mysite" / "settings.py"
    settings.write_text(f'{settings.read_text()}\n{readme_snippet("settings.py")}\n'
                        'INSTALLED_APPS += ["shop"]\n')
    (path / "mysite" / "urls.py").write_text(readme_snippet("urls.py"))
    (path / "shop").mkdir()
    (path / "shop" / "__init__.py").write_text("")
    (path / "shop" / "plugin.py").write_text(SHOP_PLUGIN)
    (path / "shop" / "jobs.py").write_text(SHOP_JOBS)
    manage(path, "migrate", "--noinput")
    manage(path, "pm", "enable", "shop")
    return path


def test_new_project__check_passes_without_a_warning(new_project):
    result = run(new_project, sys.executable, "manage.py", "check")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    assert "System check identified no issues" in output


def test_new_project__a_job_of_the_enabled_plugin_completes_in_runjobs_burst(new_project):
    job_id = int(manage(new_project, "shell", "-c", ENQUEUE).stdout.strip().splitlines()[-1])

    manage(new_project, "runjobs", "--burst")

    with closing(sqlite3.connect(new_project / "db.sqlite3")) as db:
        row = db.execute("SELECT topic, status FROM _jobs WHERE id = ?", (job_id,)).fetchone()
    assert row == ("shop.send_receipt", "completed")
