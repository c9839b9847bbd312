"""Moved to :mod:`jobs.sql`; this name stays only while ``tests/test_prepared_statements.py``
(outside the jobs app) imports ``claims_for`` from here."""

from .sql import statements_for as claims_for

__all__ = ["claims_for"]
