"""``riskgrade stress``: rate the portfolio under a macro scenario against the unstressed base.

Registered on the main app by ``riskgrade.cli`` (``cli_stress.register(app)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from riskgrade.config import DEFAULT_PARAMS_PATH


def _covenant_check(settings: Any, raw: str | Path, as_of: Any) -> Any:
    """Each customer's contract covenants (recorded terms, else its tier's template)."""
    from features.records import load_records
    from monitoring.stress import contract_covenant_check

    terms = load_records(raw, as_of).contract_terms
    return contract_covenant_check(settings.covenants, as_of, terms)


def _print_result(result: Any, rows: int) -> None:
    import pandas as pd

    from monitoring.stress_report import summary
    from riskgrade.cli_monitor import _matrix_table
    from riskgrade.console import compact_table, console

    head = summary(result)
    change = head["expected_defaults_change_pct"]
    breaches = (
        f"{head['base_covenant_breaches']} → {head['stressed_covenant_breaches']}"
        if head["covenants_checked"]
        else "not checked"
    )
    console.print(
        compact_table(
            f"Stress test '{result.scenario.name}' at {result.as_of} "
            f"(model {result.model_version})",
            ["item", "value"],
            [
                ("customers (shocked)", f"{head['customers']:,} ({head['shocked_customers']:,})"),
                ("performing / in default", f"{head['performing']:,} / {head['in_default']:,}"),
                (
                    "expected defaults",
                    f"{head['base_expected_defaults']:.2f} → "
                    f"{head['stressed_expected_defaults']:.2f}"
                    + ("" if change is None else f" ({change:+.1%})"),
                ),
                ("grade downgrades", f"{head['grade_downgrades']:,}"),
                (
                    "tier downgrades (into restricted)",
                    f"{head['tier_downgrades']:,} ({head['entered_restricted']:,})",
                ),
                ("covenant breaches", breaches),
                ("rated better under stress", f"{head['improved']:,}"),
            ],
        )
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(_matrix_table(result.tier_matrix, "Tier migration, base → stressed"))
    console.print(
        _matrix_table(result.grade_matrix, "Grade migration, base → stressed", shares=False)
    )
    segments = result.segments
    checked = result.covenants_checked
    for dimension in ("industry", "region"):
        part = segments[segments["dimension"] == dimension]
        part = part.sort_values("change", ascending=False).head(rows)
        console.print(
            compact_table(
                f"Expected defaults by {dimension} (sum of PD of performing customers)",
                [dimension, "customers", "base", "stressed", "change", "tier↓"]
                + (["breaches"] if checked else []),
                [
                    [
                        r.segment,
                        f"{r.customers:,}",
                        f"{r.base_expected_defaults:.2f}",
                        f"{r.stressed_expected_defaults:.2f}",
                        "" if pd.isna(r.change_pct) else f"{r.change_pct:+.0%}",
                        f"{r.tier_downgrades:,}",
                    ]
                    + ([f"{r.base_breaches}→{r.stressed_breaches}"] if checked else [])
                    for r in part.itertuples(index=False)
                ],
            )
        )


def register(app: typer.Typer) -> None:
    """Add the ``stress`` command to the riskgrade app."""

    @app.command()
    def stress(
        raw: Annotated[
            Path, typer.Option(help="raw folder (read as known at --as-of, then validated)")
        ],
        as_of: Annotated[str, typer.Option(help="rating date, YYYY-MM-DD")],
        scenario: Annotated[
            str,
            typer.Option(
                help="scenario YAML file, or the name of a shipped one (sector_downturn, recession)"
            ),
        ],
        bundle: Annotated[
            Path | None, typer.Option(help="bundle folder (default: MLflow champion)")
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option(help="report folder (default: <reports>/stress/<scenario>-<as-of>)"),
        ] = None,
        rows: Annotated[int, typer.Option(help="segments shown per table", min=1)] = 10,
        params: Annotated[
            Path, typer.Option("--params", help="params.yaml with seeds, paths and settings")
        ] = DEFAULT_PARAMS_PATH,
    ) -> None:
        """Apply a macro scenario to the point-in-time records; compare with the base rating."""
        from rich.progress import Progress

        from monitoring.scenario import load_scenario
        from monitoring.stress import stress as run_stress
        from monitoring.stress_report import write_stress_report
        from riskgrade.cli_common import champion_bundle as _champion_bundle
        from riskgrade.cli_common import read_at as _read_at
        from riskgrade.cli_common import require_date as _require_date
        from riskgrade.config import load_params as _params
        from riskgrade.console import console, err_console

        day = _require_date(as_of, "--as-of")
        loaded = load_scenario(scenario)  # before the slow steps: a bad file fails at once
        settings = _params(params)
        bundle_dir, _ = _champion_bundle(settings, bundle)
        with Progress(console=err_console, transient=True) as progress:
            reading = progress.add_task("reading raw data", total=None)
            tables = _read_at(raw, day).tables
            progress.remove_task(reading)
            task = progress.add_task("rating base and stressed", total=None)
            result = run_stress(
                tables,
                loaded,
                bundle_dir,
                day,
                covenants=_covenant_check(settings, raw, day),
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        _print_result(result, rows)
        target = out or settings.paths.reports / "stress" / f"{loaded.name}-{day.isoformat()}"
        paths = write_stress_report(result, target)
        console.print(f"report: {paths['html']}  json: {paths['json']}  csv: {paths['segments']}")
