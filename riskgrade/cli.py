"""The ``riskgrade`` command line: a thin layer that parses arguments and calls the packages.

Heavy packages are imported inside the commands so that ``riskgrade --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from riskgrade.config import DEFAULT_PARAMS_PATH, Params, load_params
from riskgrade.console import console, err_console, frame_table, rows_table

app = typer.Typer(
    name="riskgrade",
    help="Risk rating for restricted-class credit customers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ParamsOption = Annotated[
    Path, typer.Option("--params", help="params.yaml with seeds, paths and model settings")
]


def _params(path: Path) -> Params:
    return load_params(path)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = f"{value!r} is not a date (YYYY-MM-DD)"
        raise typer.BadParameter(message, param_hint=option) from None


@app.command()
def generate(
    customers: Annotated[int | None, typer.Option(help="number of customers", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    out: Annotated[Path | None, typer.Option(help="raw folder to write")] = None,
    start: Annotated[str | None, typer.Option(help="first month, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD")] = None,
    shock_date: Annotated[str | None, typer.Option(help="macro shock from this date")] = None,
    shock_size: Annotated[float | None, typer.Option(help="health drop of the shock")] = None,
    shock_industries: Annotated[
        str | None, typer.Option(help="comma-separated industries hit (default all)")
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Write a synthetic sample portfolio (raw folder in the contract, plus _truth/)."""
    from features.synthetic import generate as run_generate

    settings = _params(params)
    overrides: dict[str, object] = {
        "customers": customers,
        "seed": seed,
        "start": _parse_date(start, "--start"),
        "end": _parse_date(end, "--end"),
        "shock_date": _parse_date(shock_date, "--shock-date"),
        "shock_size": shock_size,
        "shock_industries": tuple(shock_industries.split(",")) if shock_industries else None,
    }
    config = settings.generate.model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )
    config = type(config).model_validate(config.model_dump())
    target = out or settings.paths.raw
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("generating", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = run_generate(config, target, progress=report)
    console.print(
        rows_table(
            f"Wrote {target}",
            ["table", "rows"],
            [(name, f"{count:,}") for name, count in summary.row_counts.items()],
        )
    )


@app.command()
def validate(
    raw_dir: Annotated[Path, typer.Argument(help="raw folder to check")],
    as_of: Annotated[str | None, typer.Option(help="extract date (default today)")] = None,
) -> None:
    """Check a raw folder against the contract; list every problem (exit 1 if any)."""
    from features.validate import validate_raw_dir

    report = validate_raw_dir(raw_dir, _parse_date(as_of, "--as-of"))
    if report.ok:
        console.print(
            rows_table(
                f"{raw_dir}: valid",
                ["table", "rows"],
                [(t, f"{n:,}") for t, n in report.row_counts.items()],
            )
        )
        return
    console.print(
        rows_table(
            f"{raw_dir}: {len(report.problems)} problem(s)",
            ["table", "column", "check", "count", "examples"],
            [(p.table, p.column, p.check, p.count, "; ".join(p.examples)) for p in report.problems],
        )
    )
    raise typer.Exit(1)


@app.command()
def describe(
    raw_dir: Annotated[Path, typer.Argument(help="raw folder")],
    as_of: Annotated[str | None, typer.Option(help="extract date (default today)")] = None,
) -> None:
    """Summary tables of a portfolio: customers by segment, default rate by year."""
    from features.portfolio import default_rate_by_year, segment_counts
    from features.validate import load_raw

    raw = load_raw(raw_dir, _parse_date(as_of, "--as-of"))
    console.print(
        frame_table(
            segment_counts(raw.customers, "industry", "size_class"),
            "Customers by industry and size",
            index=True,
        )
    )
    console.print(
        frame_table(
            segment_counts(raw.customers, "region", "size_class"),
            "Customers by region and size",
            index=True,
        )
    )
    console.print(frame_table(default_rate_by_year(raw), "Default rate by year"))


def main() -> None:
    """Console entry point: runs the app and turns input errors into clear messages."""
    from pydantic import ValidationError

    try:
        app()
    except (ValueError, ValidationError, FileNotFoundError, PermissionError) as error:
        if os.environ.get("RISKGRADE_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {error}")
        sys.exit(2)
