"""The test settings on PostgreSQL (the database ``test`` on 127.0.0.1 unless DATABASE_URL says)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")

from .settings import *  # noqa: E402, F403
