"""``riskgrade monitor``: re-rate the portfolio, store the run, print migration, drift, warnings.

Registered on the main app by ``riskgrade.cli`` (``cli_monitor.register(app)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from riskgrade.cli_common import champion_bundle, environment, require_date
from riskgrade.config import DEFAULT_PARAMS_PATH, load_params

_TRIGGER_SHORT = {
    "grade_drop": "grade↓",
    "entered_high": "→high",
    "entered_restricted": "→restricted",
    "hard_rule": "hard rule",
    "new_default": "default",
    "covenant_breach": "covenant",
    "reporting_overdue": "report due",
    "review_overdue": "review due",
    "measure": "measure",
}
"""Short names of the early-warning triggers for the terminal (codes in the report)."""


def _move(previous: object, current: object) -> str:
    """``a→b``, just ``b`` when unchanged, ``new→b`` for a customer not rated before."""
    if previous is None or previous != previous:  # None or NaN: not rated before
        return f"new→{current}"
    return str(current) if previous == current else f"{previous}→{current}"


def _matrix_table(matrix: Any, title: str, *, shares: bool = True) -> Any:
    """Migration counts, previous rating by row; with ``shares`` each row's share too."""
    from riskgrade.console import compact_table

    counts = matrix.counts
    rows = []
    for label in counts.index:
        cells = []
        for column in counts.columns:
            n = int(counts.loc[label, column])
            share = matrix.shares.loc[label, column]
            cells.append((f"{n} ({share:.0%})" if shares else str(n)) if n else "")
        rows.append([str(label), *cells, str(int(counts.loc[label].sum()))])
    return compact_table(
        f"{title}: {matrix.downgrades} down, {matrix.upgrades} up, {matrix.new} new"
        + ("" if shares else " (row shares in the report)"),
        ["from \\ to", *[str(c) for c in counts.columns], "total"],
        rows,
    )


def _print_run(run: Any, rows: int) -> None:
    from monitoring.report import summary
    from riskgrade.console import compact_table, console, rows_table

    head = summary(run)
    console.print(
        rows_table(
            f"Monitoring run {run.run_id} at {run.info.as_of}",
            ["item", "value"],
            [
                (k, f"{v:.4g}" if isinstance(v, float) else v)
                for k, v in head.items()
                if k not in ("bundle_hash", "notes") and not isinstance(v, dict)
            ],
        )
    )
    for note in run.notes:
        console.print(f"[yellow]note:[/] {note}")
    if run.tier_matrix is not None and run.grade_matrix is not None:
        console.print(_matrix_table(run.tier_matrix, "Tier migration"))
        console.print(_matrix_table(run.grade_matrix, "Grade migration", shares=False))
    if not run.drift.empty:
        drift = run.drift
        shown = drift[(drift.index == 0) | drift["flag"].isin(["watch", "alert"])].head(rows)
        sizes = sorted({int(n) for n in drift["n"]})
        console.print(
            compact_table(
                f"Drift: PSI against the training reference, {'/'.join(map(str, sizes))} "
                f"customers ({int((drift['flag'] == 'alert').sum())} alert, "
                f"{int((drift['flag'] == 'watch').sum())} watch of {len(drift)}; groups in "
                "the report)",
                ["feature", "PSI", "noise", "flag", "missing", "ref. missing"],
                [
                    (
                        r.feature,
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
        compact_table(
            f"Early warnings: {len(warnings):,} customers, most severe first (first "
            f"{min(rows, len(warnings))}; severity, details and reasons in the report)",
            ["customer", "grade", "tier", "action", "triggers"],
            [
                (
                    r.customer_id,
                    _move(r.previous_grade, r.grade),
                    _move(r.previous_tier, r.tier),
                    r.action,
                    ", ".join(_TRIGGER_SHORT.get(t, t) for t in str(r.triggers).split(";")),
                )
                for r in warnings.head(rows).itertuples(index=False)
            ],
            last_fits=True,
        )
    )


def _print_management(run: Any) -> None:
    """Covenant breaches and the portfolio by segment (the report has every row)."""
    from riskgrade.console import compact_table, console

    checks = run.covenants
    if len(checks):
        breached = checks[checks["breached"]]
        console.print(
            f"Covenants: {len(checks):,} in force, {len(breached):,} breached "
            f"({int((breached['covenant'] == 'reporting_months').sum()):,} reports past due); "
            "breaches in covenants.csv"
        )
    segments = run.segments
    for dimension in segments["dimension"].unique():
        rows = segments[segments["dimension"] == dimension]
        console.print(
            compact_table(
                f"By {dimension.replace('_', ' ')}: customers (n), tiers, customers not in "
                "normal status, tier moves, early warnings",
                [
                    "segment",
                    "n",
                    "low",
                    "med",
                    "high",
                    "restr",
                    "status",
                    "down",
                    "up",
                    "warn",
                ],
                [
                    (
                        r.segment,
                        r.customers,
                        r.tier_low,
                        r.tier_medium,
                        r.tier_high,
                        r.tier_restricted,
                        r.customers - r.status_normal,
                        r.downgrades,
                        r.upgrades,
                        r.warnings,
                    )
                    for r in rows.itertuples(index=False)
                ],
            )
        )


def register(app: typer.Typer) -> None:
    """Add the ``monitor`` command to the riskgrade app."""

    @app.command()
    def monitor(
        raw: Annotated[
            str,
            typer.Option(
                help="raw folder or database URL (read as known at --as-of, then validated)"
            ),
        ],
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
        chunk_size: Annotated[
            int | None,
            typer.Option(help="customers per chunk (default: monitoring.chunk_size)", min=1),
        ] = None,
        record: Annotated[
            bool,
            typer.Option(
                "--record",
                help="record the warnings in the audit chain and propose the stricter statuses "
                "they call for (a person confirms each); record each rating as a batch "
                "decision",
            ),
        ] = False,
        params: Annotated[
            Path, typer.Option("--params", help="params.yaml with seeds, paths and settings")
        ] = DEFAULT_PARAMS_PATH,
    ) -> None:
        """Re-rate the portfolio, store the run; print migration, drift and early warnings.

        The raw data is read, validated and rated one range of --chunk-size customers at a
        time; only each customer's results are kept.
        """
        import pandas as pd
        from rich.progress import Progress

        from features.judgement import load_judgement
        from features.records import load_records
        from features.source import open_raw_source
        from monitoring.lifecycle import management_inputs, record_ratings, record_run
        from monitoring.report import write_report
        from monitoring.run import finish_run, previous_run, rate_source, raw_ranges
        from monitoring.store import MonitoringStore
        from riskgrade.console import console, err_console
        from serving.stores import people_store

        day = require_date(as_of, "--as-of")
        if lang not in ("en", "zh"):
            raise typer.BadParameter(f"{lang!r} is not en or zh", param_hint="--lang")
        settings = load_params(params)
        config = settings.monitoring.model_copy(
            update={"lang": lang, **({"chunk_size": chunk_size} if chunk_size else {})}
        )
        bundle_dir, _ = champion_bundle(settings, bundle)
        if reviews is not None:
            added = MonitoringStore(store).record_reviews(pd.read_csv(reviews))
            err_console.print(f"recorded {added} review(s) from {reviews}")
        previous_info = previous_run(store, day, previous, config)
        # The folder as known at as_of: a later extract gives the same run (older runs are
        # back-tested with the defaults known at as_of).
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("rating", total=None)
            rated, cut = rate_source(
                raw,
                day,
                bundle_dir,
                config,
                previous_as_of=previous_info.as_of if previous_info is not None else None,
                judgement_config=settings.rating.judgement,
                progress=lambda done, _: progress.update(task, completed=done),
            )
        if not cut.empty:
            err_console.print(cut.summary())
        customers = rated.customers
        judgement = load_judgement(raw, day, customers["customer_id"])
        records = load_records(raw, day, customers["customer_id"])
        audit = people_store(environment(), settings.paths.audit_db, required=record)
        statuses, measures = (
            management_inputs(audit, customers, day) if audit is not None else (None, None)
        )
        run = finish_run(
            rated,
            bundle_dir,
            store,
            previous_info,
            config,
            judgement=judgement,
            judgement_config=settings.rating.judgement,
            records=records,
            covenant_config=settings.covenants,
            measures=measures,
            statuses=statuses,
        )
        _print_run(run, rows)
        if record and audit is not None:
            with Progress(console=err_console, transient=True) as progress:
                task = progress.add_task("recording", total=len(run.ratings))
                decisions = record_ratings(
                    audit,
                    run,
                    raw_ranges(raw, day, config.chunk_size),
                    bundle_dir,
                    settings.rating.judgement,
                    settings.rating.lifecycle,
                    source=open_raw_source(raw).label,
                    lang=lang,
                    progress=lambda done, total: progress.update(task, completed=done),
                )
            recorded = record_run(audit, run.run_id, day, run.warnings, settings.rating.lifecycle)
            console.print(
                f"audit chain: {decisions.written} batch decision(s) recorded, "
                f"{recorded.warnings} warning(s) recorded, "
                f"{len(recorded.proposals)} status change(s) proposed for confirmation"
            )
        _print_management(run)
        target = out or settings.paths.reports / "monitoring" / run.run_id
        paths = write_report(run, target)
        console.print(f"report: {paths['html']}  json: {paths['json']}  store: {store}")
