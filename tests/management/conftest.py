"""Management tests run on the audit store of both databases (fixtures of tests/audit)."""

from __future__ import annotations

from tests.audit.conftest import backend, filled  # noqa: F401  (fixtures: SQLite and PostgreSQL)
