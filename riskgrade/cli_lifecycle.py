"""``riskgrade reviews|contacts|status|measures``: the customer lifecycle from the command line.

Registered on the main app by ``riskgrade.cli`` (``cli_lifecycle.register(app)``). Thin: the
logic is in ``management`` (``management.crm``, ``management.lifecycle``,
``management.measures``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args

import typer

from rating.lifecycle import MeasureStatus as MeasureStatusName
from riskgrade.cli_common import (
    AuditDbOption,
    ParamsOption,
    audit_store,
    known_customers,
    moment,
    require_date,
)
from riskgrade.config import DEFAULT_PARAMS_PATH

if TYPE_CHECKING:
    from rating.lifecycle import MeasureEffect, MeasureScope

reviews_app = typer.Typer(help="Credit reviews.", no_args_is_help=True)
contacts_app = typer.Typer(help="Contacts with customers.", no_args_is_help=True)
status_app = typer.Typer(
    help="Customer status (watch, suspended, exiting...).", no_args_is_help=True
)
measures_app = typer.Typer(help="Emergency measures.", no_args_is_help=True)

FileArgument = Annotated[
    Path,
    typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV file to import"),
]
ByOption = Annotated[str, typer.Option("--by", help="name of the person who recorded them")]
RawOption = Annotated[
    Path | None,
    typer.Option(help="raw folder: customers missing from its customers table are problems"),
]


MeasureStatus = StrEnum(  # type: ignore[misc]
    "MeasureStatus", {name: name for name in get_args(MeasureStatusName)}
)
"""Statuses of an emergency measure (the choices of ``measures list --status``)."""


def _import(
    kind: Literal["reviews", "contacts"],
    file: Path,
    by: str,
    raw: Path | None,
    db: Path | None,
    params: Path,
) -> None:
    """Import one CSV file of ``kind`` by ``by``: all rows, or none with every problem tabled."""
    from management import Actor
    from management.crm import ImportRejectedError, import_csv
    from riskgrade.config import load_params as _params
    from riskgrade.console import console, err_console, rows_table

    if not by.strip():
        raise typer.BadParameter("name the person who recorded them", param_hint="--by")
    settings = _params(params)
    actor = Actor(name=by.strip(), role="analyst")
    known = known_customers(raw) if raw is not None else None
    store = audit_store(settings, db, create=True)
    try:
        recorded = import_csv(store, actor, file, kind, known_customers=known)
    except ImportRejectedError as error:
        err_console.print(
            rows_table(
                f"{file}: {len(error.problems)} problem(s)",
                ["line", "column", "problem"],
                [(p.line, p.column, p.message) for p in error.problems],
            )
        )
        raise
    finally:
        store.close()
    console.print(f"recorded {len(recorded):,} {kind} from {file} by {by}")


def _import_command(kind: Literal["reviews", "contacts"], doc: str) -> Callable[..., None]:
    """The ``import`` command of ``kind`` (the same options for reviews and contacts)."""

    def command(
        file: FileArgument,
        by: ByOption,
        raw: RawOption = None,
        db: AuditDbOption = None,
        params: ParamsOption = DEFAULT_PARAMS_PATH,
    ) -> None:
        _import(kind, file, by, raw, db, params)

    command.__doc__ = doc
    return command


reviews_import = reviews_app.command("import")(
    _import_command(
        "reviews",
        """Record credit reviews from a CSV file: all of them, or none with every problem listed.

    Columns: customer_id, review_date, outcome (satisfactory, watch, tighten, exit), notes,
    next_review_date.
    """,
    )
)
contacts_import = contacts_app.command("import")(
    _import_command(
        "contacts",
        """Record contacts from a CSV file: all of them, or none with every problem listed.

    Columns: customer_id, date, channel (visit, call, email, letter, meeting), summary.
    """,
    )
)


@status_app.command("list")
def status_list(
    pending: Annotated[
        bool, typer.Option("--pending", help="the changes waiting for a second person")
    ] = False,
    as_of: Annotated[
        str | None, typer.Option(help="statuses at the end of this day, YYYY-MM-DD (default now)")
    ] = None,
    db: AuditDbOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Customers whose status is not normal, or (--pending) the changes waiting for a person.

    Times are UTC. An empty "confirmed by" is a change that needs no second person (watch,
    restricted). The change id column shows the first 8 characters of each id.
    """
    from management.events import utc_now
    from management.lifecycle import pending_status_changes, statuses_at
    from rating.lifecycle import CustomerStatus
    from riskgrade.config import load_params as _params
    from riskgrade.console import compact_table, console

    day = _optional_date(as_of, "--as-of")
    if pending and day is not None:
        raise typer.BadParameter(
            "pending changes are listed as they stand now; leave out --as-of", param_hint="--as-of"
        )
    store = audit_store(_params(params), db)
    try:
        if pending:
            waiting = pending_status_changes(store)
        else:
            changes = statuses_at(store, day or utc_now())
    finally:
        store.close()
    if pending:
        console.print(
            compact_table(
                "Status changes waiting for a second person",
                ["change id", "customer", "from", "to", "proposer", "proposed at", "required role"],
                [
                    [
                        s.proposal_id[:8],
                        s.subject,
                        s.payload["from"],
                        s.payload["to"],
                        s.proposer,
                        moment(s.proposed_at),
                        s.required_role.value,
                    ]
                    for s in waiting
                ],
                last_fits=True,
            )
        )
        console.print(f"{len(waiting):,} pending change(s)")
        return
    shown = sorted(
        (c for c in changes.values() if c.status_to is not CustomerStatus.NORMAL),
        key=lambda c: c.customer_id,
    )
    console.print(
        compact_table(
            f"Customers not in normal status at the end of {day}"
            if day
            else "Customers not in normal status now",
            ["customer", "status", "since", "confirmed by"],
            [
                [c.customer_id, c.status_to.value, moment(c.effective_at), c.confirmed_by or ""]
                for c in shown
            ],
        )
    )
    console.print(f"{len(shown):,} customer(s) not normal")


def _scope(scope: MeasureScope) -> str:
    parts = (
        ("industries", scope.industries),
        ("regions", scope.regions),
        ("sizes", scope.size_classes),
        ("customers", scope.customer_ids),
    )
    return "; ".join(f"{name} {', '.join(values)}" for name, values in parts if values)


def _effect(effect: MeasureEffect) -> str:
    parts = []
    if effect.min_tier is not None:
        parts.append(f"tier ≥ {effect.min_tier}")
    if effect.suspend_new_credit:
        parts.append("no new credit")
    if effect.max_credit_limit_factor is not None:
        parts.append(f"limit × {effect.max_credit_limit_factor:g}")
    return "; ".join(parts)


@measures_app.command("list")
def measures_list(
    status: Annotated[MeasureStatus | None, typer.Option(help="only those in this status")] = None,
    db: AuditDbOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Emergency measures, oldest first, with their scope, effect and who proposed and approved.

    Two lines per measure: id over title, start over expiry, proposer over approver, scope
    over effect (the expiry is the first day it no longer applies).
    """
    from management.measures import list_measures
    from riskgrade.config import load_params as _params
    from riskgrade.console import compact_table, console

    store = audit_store(_params(params), db)
    try:
        found = [v for v in list_measures(store) if status is None or v.status == status.value]
    finally:
        store.close()
    columns = ["id\ntitle", "status", "starts\nexpires", "proposer\napprover", "scope\neffect"]
    console.print(
        compact_table(
            f"Emergency measures ({status.value if status else 'all'})",
            columns,
            [
                [
                    f"{v.measure.measure_id}\n{v.measure.title}",
                    v.status,
                    f"{v.measure.starts_on}\n{v.measure.expires_on}",
                    f"{v.measure.proposer}\n{v.measure.approver or ''}",
                    f"{_scope(v.measure.scope)}\n{_effect(v.measure.effect)}",
                ]
                for v in found
            ],
            wrap=(columns[0], columns[-1]),
        )
    )
    console.print(f"{len(found):,} measure(s)")


def _optional_date(value: str | None, option: str) -> date | None:
    return None if value is None else require_date(value, option)


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to the main app."""
    app.add_typer(reviews_app, name="reviews")
    app.add_typer(contacts_app, name="contacts")
    app.add_typer(status_app, name="status")
    app.add_typer(measures_app, name="measures")
