"""Option parsing and loading shared by the command modules (``cli``, ``cli_monitor``).

Both import this module and neither imports the other (an import-linter contract keeps the
``riskgrade`` modules acyclic); what is not about the command line lives in the packages
(`rating.champion.resolve_bundle`, `features.validate.load_raw_at`).
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from features.schema import MAX_DATE, MIN_DATE
from riskgrade.config import Params
from riskgrade.console import err_console

if TYPE_CHECKING:
    from audit import AuditStore
    from features.validate import PointInTimeRaw
    from serving.settings import RiskgradeSettings

EARLIEST_DATE = date.fromisoformat(MIN_DATE)
LATEST_DATE = date.fromisoformat(MAX_DATE)
"""Dates the command line accepts (the raw contract's and the API's bounds): every window
derived from one (12 months back, a label horizon or a day ahead) stays a valid date."""


def environment() -> RiskgradeSettings:
    """The ``RISKGRADE_*`` settings of this process, read when a command needs them.

    Raises:
        serving.settings.SettingsError: naming a variable whose value is invalid.
    """
    from serving.settings import RiskgradeSettings

    return RiskgradeSettings.from_environ()


def audit_key() -> bytes | None:
    """The audit checkpoint key (``RISKGRADE_AUDIT_KEY``), None when unset."""
    from serving.stores import audit_key as key_of

    return key_of(environment())


def require_date(value: str, option: str) -> date:
    """``value`` as a date within the accepted bounds.

    Raises:
        typer.BadParameter: naming ``option`` when the value is not a date or out of bounds.
    """
    try:
        day = date.fromisoformat(value)
    except ValueError:
        message = f"{value!r} is not a date (YYYY-MM-DD)"
        raise typer.BadParameter(message, param_hint=option) from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        message = f"{value} is outside {EARLIEST_DATE}..{LATEST_DATE}"
        raise typer.BadParameter(message, param_hint=option)
    return day


def read_at(raw_dir: str | Path, day: date) -> PointInTimeRaw:
    """A raw folder or database as known at ``day``: later records are left out, on stderr."""
    from features.validate import load_raw_at

    known = load_raw_at(raw_dir, day)
    if not known.cut.empty:
        err_console.print(known.cut.summary())
    return known


def champion_bundle(settings: Params, bundle: Path | None) -> tuple[Path, str]:
    """The bundle to serve: the given folder, else the MLflow champion; archived by hash.

    The registry is ``MLFLOW_TRACKING_URI`` when set, else the one in params.

    Raises:
        ModelIncompatibleError: if the bundle needs features the feature code does not compute.
    """
    from rating.champion import resolve_bundle

    registry = settings.train.registry
    return resolve_bundle(
        bundle,
        archive=settings.paths.bundles,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", registry.tracking_uri),
        model_name=registry.registered_model_name,
        alias=registry.champion_alias,
    )


def audit_store(settings: Params, db: Path | None = None, *, create: bool = False) -> AuditStore:
    """The audit store: PostgreSQL when RISKGRADE_AUDIT_URL is set, else the SQLite file.

    Raises:
        FileNotFoundError: if the SQLite file does not exist and ``create`` is off.
    """
    from serving.stores import open_store

    return open_store(environment(), settings.paths.audit_db, db, create=create)


ParamsOption = Annotated[Path, typer.Option(help="params.yaml")]
AuditDbOption = Annotated[
    Path | None, typer.Option("--db", help="audit database (default from params)")
]


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
