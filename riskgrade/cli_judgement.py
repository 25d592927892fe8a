"""``riskgrade assessments|overrides|judgement``: people's judgement from the command line.

Registered on the main app by ``riskgrade.cli`` (``cli_judgement.register(app)``). Thin: the
logic is in ``management`` (``management.files``, ``management.judgement``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from riskgrade.cli_common import AuditDbOption, ParamsOption, audit_store, known_customers
from riskgrade.config import DEFAULT_PARAMS_PATH

if TYPE_CHECKING:
    from management.judgement import RatingRules
    from riskgrade.config import Params

assessments_app = typer.Typer(help="Qualitative assessments.", no_args_is_help=True)
overrides_app = typer.Typer(help="Overrides and expert ratings (four eyes).", no_args_is_help=True)
judgement_app = typer.Typer(help="Human judgement for auditors.", no_args_is_help=True)


class Status(StrEnum):
    """Override statuses."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"


class Format(StrEnum):
    """Export formats."""

    csv = "csv"
    parquet = "parquet"


def _rules(settings: Params) -> RatingRules:
    from management.judgement import RatingRules

    rating = settings.rating
    return RatingRules(rating.scale, rating.policy, rating.judgement, rating.lifecycle)


@assessments_app.command("import")
def assessments_import(
    file: Annotated[Path, typer.Argument(help="CSV: customer_id, as_of, one column per factor")],
    analyst: Annotated[str, typer.Option(help="name of the analyst who made them")],
    raw: Annotated[
        Path | None, typer.Option(help="raw folder of known customers (default from params)")
    ] = None,
    db: AuditDbOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Record assessments from a CSV file: all of them, or none with every problem listed."""
    from datetime import date

    from management import Actor
    from management.files import check_assessments, import_assessments, read_assessments
    from riskgrade.config import load_params as _params
    from riskgrade.console import console

    settings = _params(params)
    rules = _rules(settings)
    customers = known_customers(raw or settings.paths.raw)
    items = check_assessments(read_assessments(file), rules, customers, date.today(), str(file))
    store = audit_store(settings, db, create=True)
    try:
        recorded = import_assessments(store, rules, Actor(name=analyst, role="analyst"), items)
    finally:
        store.close()
    console.print(f"recorded {len(recorded):,} assessments from {file}")


@overrides_app.command("list")
def overrides_list(
    status: Annotated[Status | None, typer.Option(help="only those in this status")] = None,
    db: AuditDbOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Overrides and expert ratings (reason OR07), oldest first, with who proposed and decided.

    The id column shows the first 8 characters of each id (``judgement export`` has them whole).
    """
    from management.judgement import overrides
    from management.proposals import ProposalStatus
    from riskgrade.config import load_params as _params
    from riskgrade.console import compact_table, console

    store = audit_store(_params(params), db)
    try:
        found = overrides(store, status=ProposalStatus(status.value) if status else None)
    finally:
        store.close()
    table = compact_table(
        f"Overrides ({status.value if status else 'all'})",
        ["id", "customer", "as of", "grade", "reason", "status", "proposer", "decided by"],
        [
            [
                s.proposal_id[:8],
                s.subject,
                s.payload["as_of"],
                f"{s.payload['base_grade']}→{s.payload['proposed_grade']}",
                s.payload["reason_code"],
                s.status.value,
                s.proposer,
                s.decided_by or "",
            ]
            for s in found
        ],
    )
    console.print(table)
    console.print(f"{len(found):,} override(s)")


@overrides_app.command("expire")
def overrides_expire(db: AuditDbOption = None, params: ParamsOption = DEFAULT_PARAMS_PATH) -> None:
    """Record the expiry of every proposal left undecided past overrides.pending_days."""
    from management.judgement import expire_overrides
    from riskgrade.config import load_params as _params
    from riskgrade.console import console

    store = audit_store(_params(params), db)
    try:
        expired = expire_overrides(store)
    finally:
        store.close()
    for state in expired:
        console.print(f"expired {state.kind} {state.proposal_id} of {state.subject}")
    console.print(f"{len(expired):,} proposal(s) expired")


@judgement_app.command("export")
def judgement_export(
    out: Annotated[Path, typer.Option(help="folder to write the tables to")],
    fmt: Annotated[Format, typer.Option("--format", help="csv or parquet")] = Format.csv,
    db: AuditDbOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Write assessments, overrides (with decisions) and every judgement event for auditors."""
    from management.files import export_judgement
    from riskgrade.config import load_params as _params
    from riskgrade.console import console

    store = audit_store(_params(params), db)
    try:
        written = export_judgement(store, out, fmt.value)
    finally:
        store.close()
    for name, path in written.items():
        console.print(f"{name}: {path}")


def register(app: typer.Typer) -> None:
    """Add the judgement commands to the main app."""
    app.add_typer(assessments_app, name="assessments")
    app.add_typer(overrides_app, name="overrides")
    app.add_typer(judgement_app, name="judgement")
