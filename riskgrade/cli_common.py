"""What the people's-action commands share (``cli_judgement``, ``cli_lifecycle``).

Options, the audit store they write to, the raw customers they check against, and the time
format of their tables. Heavy packages are imported inside the functions.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from audit import AuditStore
    from riskgrade.config import Params

ParamsOption = Annotated[Path, typer.Option(help="params.yaml")]
AuditDbOption = Annotated[
    Path | None, typer.Option("--db", help="audit database (default from params)")
]


def audit_store(settings: Params, db: Path | None, *, create: bool = False) -> AuditStore:
    """The audit store (PostgreSQL with RISKGRADE_AUDIT_URL), created when ``create``.

    Raises:
        FileNotFoundError: the SQLite file does not exist and ``create`` is off.
    """
    from audit import AuditConfig, open_audit_store
    from riskgrade.cli import _audit_store  # imported late: riskgrade.cli imports this module

    if create and not os.environ.get("RISKGRADE_AUDIT_URL"):
        return open_audit_store(AuditConfig(path=db or settings.paths.audit_db))
    return _audit_store(settings, db)


def known_customers(raw: Path) -> set[str]:
    """The customer ids of a raw folder's ``customers`` table.

    Raises:
        RawDataError: the table is missing or unreadable.
    """
    from features.io import read_table

    return set(read_table(raw, "customers")["customer_id"].astype(str))


def moment(value: datetime) -> str:
    """A recorded moment for a table cell: UTC, to the minute."""
    from management.events import aware

    return aware(value).strftime("%Y-%m-%d %H:%M")
