"""``riskgrade monitor``: re-rate the portfolio, store the run, print migration, drift, warnings.

Registered on the main app by ``riskgrade.cli`` (``cli_monitor.register(app)``).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from riskgrade.config import DEFAULT_PARAMS_PATH


def _date(value: str, option: str) -> date:
    from riskgrade.cli import _require_date  # imported late: riskgrade.cli imports this module

    return _require_date(value, option)


def _matrix_table(matrix: Any, title: str) -> Any:
    from riskgrade.console import rows_table

    counts = matrix.counts
    shares = matrix.shares
    rows = []
    for label in counts.index:
        cells = []
        for column in counts.columns:
            n = int(counts.loc[label, column])
            share = shares.loc[label, column]
            cells.append(f"{n} ({share:.0%})" if n else "")
        rows.append([str(label), *cells, str(int(counts.loc[label].sum()))])
    return rows_table(
        f"{title}: {matrix.downgrades} down, {matrix.upgrades} up, {matrix.new} new",
        ["previous \\ current", *[str(c) for c in counts.columns], "total"],
        rows,
    )


def _print_run(run: Any, rows: int) -> None:
    from monitoring.report import summary
    from riskgrade.console import console, rows_table

    head = summary(run)
    console.print(
        rows_table(
            f"Monitoring run {run.run_id} at {run.info.as_of}",
            ["item", "value"],
            [
                (k, v)
                for k, v in head.items()
                if k not in ("bundle_hash", "notes") and not isinstance(v, dict)
            ],
        )
    )
    for note in run.notes:
        console.print(f"[yellow]note:[/] {note}")
    if run.tier_matrix is not None and run.grade_matrix is not None:
        console.print(_matrix_table(run.tier_matrix, "Tier migration"))
        console.print(_matrix_table(run.grade_matrix, "Grade migration"))
    if not run.drift.empty:
        drift = run.drift
        shown = drift[(drift.index == 0) | drift["flag"].isin(["watch", "alert"])].head(rows)
        console.print(
            rows_table(
                f"Drift: PSI against the training reference "
                f"({int((drift['flag'] == 'alert').sum())} alert, "
                f"{int((drift['flag'] == 'watch').sum())} watch of {len(drift)})",
                ["feature", "group", "n", "PSI", "noise", "flag", "missing", "ref. missing"],
                [
                    (
                        r.feature,
                        r.group,
                        f"{r.n:,}",
                        f"{r.psi:.3f}",
                        f"{r.psi_noise:.3f}",
                        r.flag,
                        f"{r.missing_share:.1%}",
                        f"{r.reference_missing_share:.1%}",
                    )
                    for r in shown.itertuples(index=False)
                ],
            )
        )
    warnings = run.warnings
    console.print(
        rows_table(
            f"Early warnings: {len(warnings):,} customers (first {min(rows, len(warnings))}; "
            "first two reasons, all in the report)",
            ["customer", "grade", "tier", "triggers", "action", "reasons"],
            [
                (
                    r.customer_id,
                    f"{r.previous_grade or '-'} -> {r.grade}",
                    f"{r.previous_tier or '-'} -> {r.tier}",
                    r.triggers.replace(";", ", "),
                    r.action,
                    "; ".join(str(r.reasons).split("; ")[:2]),
                )
                for r in warnings.head(rows).itertuples(index=False)
            ],
        )
    )


def register(app: typer.Typer) -> None:
    """Add the ``monitor`` command to the riskgrade app."""

    @app.command()
    def monitor(
        raw: Annotated[Path, typer.Option(help="raw folder (validated on read)")],
        as_of: Annotated[str, typer.Option(help="rating date, YYYY-MM-DD")],
        previous: Annotated[
            str | None,
            typer.Option(help="run id to compare with (default: latest stored run before)"),
        ] = None,
        bundle: Annotated[
            Path | None, typer.Option(help="bundle folder (default: MLflow champion)")
        ] = None,
        store: Annotated[Path, typer.Option(help="monitoring store (DuckDB file)")] = Path(
            "data/monitoring.duckdb"
        ),
        out: Annotated[
            Path | None, typer.Option(help="report folder (default: <reports>/monitoring/<run>)")
        ] = None,
        reviews: Annotated[
            Path | None,
            typer.Option(help="CSV of credit reviews to record first (customer_id,review_date)"),
        ] = None,
        rows: Annotated[int, typer.Option(help="rows shown per table", min=1)] = 20,
        lang: Annotated[str, typer.Option(help="reason language: en or zh")] = "en",
        params: Annotated[
            Path, typer.Option("--params", help="params.yaml with seeds, paths and settings")
        ] = DEFAULT_PARAMS_PATH,
    ) -> None:
        """Re-rate the portfolio, store the run; print migration, drift and early warnings."""
        import pandas as pd
        from rich.progress import Progress

        from features.validate import load_raw
        from monitoring.config import MonitoringConfig
        from monitoring.report import write_report
        from monitoring.run import run_monitoring
        from monitoring.store import MonitoringStore
        from riskgrade.cli import _champion_bundle, _params
        from riskgrade.console import console, err_console

        day = _date(as_of, "--as-of")
        if lang not in ("en", "zh"):
            raise typer.BadParameter(f"{lang!r} is not en or zh", param_hint="--lang")
        settings = _params(params)
        bundle_dir, _ = _champion_bundle(settings, bundle)
        if reviews is not None:
            added = MonitoringStore(store).record_reviews(pd.read_csv(reviews))
            err_console.print(f"recorded {added} review(s) from {reviews}")
        # Validate against today, not as_of: a past run may read a later extract (its
        # rating only sees records known at as_of; later defaults back-test older runs).
        tables = load_raw(raw)
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("rating", total=None)
            run = run_monitoring(
                tables,
                day,
                bundle_dir,
                store,
                previous,
                MonitoringConfig(lang=lang),  # type: ignore[arg-type]
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        _print_run(run, rows)
        target = out or settings.paths.reports / "monitoring" / run.run_id
        paths = write_report(run, target)
        console.print(f"report: {paths['html']}  json: {paths['json']}  store: {store}")
