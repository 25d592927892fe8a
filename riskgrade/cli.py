"""The ``riskgrade`` command line: a thin layer that parses arguments and calls the packages.

Heavy packages are imported inside the commands so that ``riskgrade --help`` stays fast.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from rating.output import columns_help
from riskgrade import cli_data, cli_judgement, cli_lifecycle, cli_monitor, cli_stress
from riskgrade.cli_common import audit_key, audit_store, environment
from riskgrade.cli_common import champion_bundle as _champion_bundle
from riskgrade.cli_common import read_at as _read_at
from riskgrade.cli_common import require_date as _require_date
from riskgrade.config import DEFAULT_PARAMS_PATH, Params, load_params
from riskgrade.console import (
    console,
    err_console,
    frame_table,
    gate_table,
    grade_table,
    rows_table,
    test_window_name,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from audit import AuditStore
    from features.io import RawTables
    from management.judgement import RatingRules
    from training.pipeline import TrainResult

app = typer.Typer(
    name="riskgrade",
    help="Risk rating for restricted-class credit customers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Lang(StrEnum):
    """Language of reason texts."""

    EN = "en"
    ZH = "zh"


ParamsOption = Annotated[
    Path, typer.Option("--params", help="params.yaml with seeds, paths and model settings")
]


def _params(path: Path) -> Params:
    return load_params(path)


def _parse_date(value: str | None, option: str) -> date | None:
    return None if value is None else _require_date(value, option)


class EngineName(StrEnum):
    """Where features and batch scores are computed."""

    polars = "polars"
    spark = "spark"


EngineOption = Annotated[
    EngineName, typer.Option(help="polars (one machine) or spark (reads and writes Parquet)")
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(help="with --engine spark: local[*], spark://..., yarn, sc://... (params)"),
]


def _uri(path: Path) -> str:
    """A path option as Spark reads it (``Path`` folds ``s3a://b/k`` into ``s3a:/b/k``)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*):/(?!/)", r"\1://", str(path))


def _spark_session(settings: Params, master: str | None) -> SparkSession:
    try:
        from features.spark.engine import spark_session
    except ImportError as error:
        raise typer.BadParameter(
            f"needs the optional spark extra (pip install 'riskgrade[spark]'): {error}",
            param_hint="--engine",
        ) from None
    return spark_session(settings.spark, master)


RAW_HELP = "raw folder, or database URL: postgresql://user@host/db, duckdb:///file.duckdb"
"""Help of every ``--raw``: a folder or a database (see ``features.source``)."""


def _spark_raw(raw: str) -> str:
    """``--raw`` as the Spark engine reads it: a folder or object-store path, not a database."""
    from features.source import is_database_url

    if is_database_url(raw):
        raise typer.BadParameter(
            "--engine spark reads Parquet folders; read a database with --engine polars",
            param_hint="--raw",
        )
    return _uri(Path(raw))


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

        summary = run_generate(
            config,
            target,
            progress=report,
            judgement=settings.rating.generator_spec(),
            records=settings.rating.records_spec(settings.covenants),
        )
    console.print(
        rows_table(
            f"Wrote {target}",
            ["table", "rows"],
            [(name, f"{count:,}") for name, count in summary.row_counts.items()],
        )
    )


@app.command()
def validate(
    raw_dir: Annotated[str, typer.Argument(help=f"{RAW_HELP}, to check")],
    as_of: Annotated[str | None, typer.Option(help="extract date (default today)")] = None,
    strict: Annotated[
        bool, typer.Option(help="records after --as-of are failures, not information")
    ] = False,
) -> None:
    """Check a raw folder or database against the contract; list every problem (exit 1 if any).

    With --as-of, records after that date are information (what a command at that date
    leaves out), unless --strict; without it, nothing may lie after today.
    """
    from features.validate import validate_raw_dir

    report = validate_raw_dir(raw_dir, _parse_date(as_of, "--as-of"), strict=strict)
    if report.later is not None and not report.later.empty:
        console.print(
            f"information, not a failure (--strict): {report.later.summary()}", soft_wrap=True
        )
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
    raw_dir: Annotated[str, typer.Argument(help=RAW_HELP)],
    as_of: Annotated[
        str | None, typer.Option(help="portfolio as known at this date (default: all of it)")
    ] = None,
) -> None:
    """Summary tables of a portfolio: customers by segment, default rate by year."""
    from features.portfolio import default_rate_by_year, segment_counts
    from features.validate import load_raw

    day = _parse_date(as_of, "--as-of")
    raw = load_raw(raw_dir) if day is None else _read_at(raw_dir, day).tables
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


features_app = typer.Typer(
    help="Point-in-time features and the training dataset.", no_args_is_help=True
)
app.add_typer(features_app, name="features")


@features_app.command("at")
def features_at(
    raw: Annotated[str, typer.Option(help=RAW_HELP)],
    as_of: Annotated[str, typer.Option(help="feature date, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="Parquet or CSV file (spark: a folder) to write")],
    chunk_size: Annotated[int, typer.Option(help="customers per chunk", min=1)] = 10_000,
    engine: EngineOption = EngineName.polars,
    spark_master: SparkMasterOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Features of every customer at one date (customer_id, as_of, then the features).

    The polars engine reads, validates and computes one range of --chunk-size customers at
    a time; the file appears when complete.
    """
    from features.chunks import write_features_at

    day = _require_date(as_of, "--as-of")
    if engine is EngineName.spark:
        from features.spark.engine import features_at as spark_features_at

        source = _spark_raw(raw)  # a database URL is refused before a JVM starts
        session = _spark_session(_params(params), spark_master)
        count = spark_features_at(session, source, day, _uri(out))
        console.print(f"wrote {count:,} customers to {out}/as_of={day} (Spark)")
        return
    written = write_features_at(raw, day, out, chunk_customers=chunk_size)
    if not written.cut.empty:
        err_console.print(written.cut.summary())
    console.print(f"wrote {written.rows:,} customers x {written.features} features to {out}")


@features_app.command("build")
def features_build(
    raw: Annotated[str | None, typer.Option(help=f"{RAW_HELP} (default from params)")] = None,
    out: Annotated[Path | None, typer.Option(help="dataset folder (default from params)")] = None,
    chunk_size: Annotated[int, typer.Option(help="customers per chunk", min=1)] = 10_000,
    engine: EngineOption = EngineName.polars,
    spark_master: SparkMasterOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """The training set: (customer, snapshot) rows, features and the 12-month default label.

    The polars engine reads and validates one range of --chunk-size customers at a time and
    computes its rows at every snapshot; the dataset appears when complete.
    """
    import pandas as pd
    from rich.progress import Progress

    from features.build import build_dataset_chunked

    settings = _params(params)
    raw_dir, out_dir = raw or settings.paths.raw, out or settings.paths.dataset
    if engine is EngineName.spark:
        from features.spark.engine import build_dataset_spark

        source = _spark_raw(str(raw_dir))
        session = _spark_session(settings, spark_master)
        dates = build_dataset_spark(session, source, _uri(out_dir), settings.features)
        console.print(f"wrote {len(dates)} snapshot partitions to {out_dir} (Spark)")
        return
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("customers", total=None)
        card = build_dataset_chunked(
            raw_dir,
            out_dir,
            settings.features,
            chunk_customers=chunk_size,
            progress=lambda done: progress.update(task, completed=done),
        )
    snapshots = card["snapshots"]
    assert isinstance(snapshots, list)
    per_snapshot = pd.DataFrame(
        {
            "rows": [s["rows"] for s in snapshots],
            "default_rate": [s["default_rate"] for s in snapshots],
        },
        index=pd.DatetimeIndex([s["snapshot_date"] for s in snapshots], name="snapshot_date"),
    )
    console.print(frame_table(per_snapshot, "Rows and default rate per snapshot", index=True))
    console.print(
        f"wrote {card['rows']:,} rows to {out_dir} (content hash {card['content_sha256']})"
    )


@features_app.command("report")
def features_report(
    dataset_dir: Annotated[Path, typer.Argument(help="dataset folder from 'features build'")],
    out: Annotated[Path | None, typer.Option(help="HTML report path")] = None,
    top: Annotated[int, typer.Option(help="rows to print", min=1)] = 15,
) -> None:
    """Information value, univariate AUC, missing share and PSI per feature (table + HTML)."""
    import pandas as pd

    from features.catalog import FEATURE_SPEC
    from features.quality import feature_quality, render_quality_report

    dataset_file = dataset_dir / "dataset.parquet" if dataset_dir.is_dir() else dataset_dir
    if not dataset_file.is_file():
        raise FileNotFoundError(f"no dataset at {dataset_file}: run 'riskgrade features build'")
    table = feature_quality(pd.read_parquet(dataset_file), FEATURE_SPEC)
    target = out or dataset_file.parent / "quality.html"
    render_quality_report(table, target)
    shown = table.sort_values("iv", ascending=False).head(top)
    shown = shown[["feature", "group", "iv", "auc_directional", "missing_share", "psi_first_last"]]
    shown.columns = ["feature", "group", "IV", "AUC", "missing", "PSI first/last"]
    console.print(
        frame_table(shown, f"Top {top} features by information value", float_format=".3f")
    )
    console.print(f"HTML report: {target}")


def _print_training(result: TrainResult) -> None:
    """Validation summary of a training run: headline metrics, gates, grade table."""
    metrics = result.metrics
    keys = [
        "test.auc",
        "test.gini",
        "test.ks",
        "test.brier",
        "test.ece",
        "challenger.test.auc",
        "oracle.test.auc",
        "cv.auc_mean",
        "cv.auc_std",
        "cv.challenger_auc_mean",
        "model.family",
        "model.blend_weight",
        "model.family_dropped",
        "cv.lgbm_plain.auc_mean",
        "cv.lgbm.auc_mean",
        "cv.ensemble.auc_mean",
        "cv.scorecard.auc_mean",
        "cv.blend.auc_mean",
        "grades.monotone",
        "model.version",
        "mlflow.registered_model",
    ]
    console.print(
        rows_table(
            f"Validation ({test_window_name(metrics.get('data.split'))})",
            ["metric", "value"],
            [
                (k, f"{metrics[k]:.4f}" if isinstance(metrics[k], float) else metrics[k])
                for k in keys
                if k in metrics
            ],
        )
    )
    console.print(gate_table(result.gates, "Gates"))
    if not result.grades.empty:
        window = test_window_name(metrics.get("data.split"))
        console.print(grade_table(result.grades, f"Rank order: grades on the {window}"))
    if result.cycle_grades is not None:
        title = "Calibration: grades over every window (gate max_red_grades)"
        console.print(grade_table(result.cycle_grades, title))
    console.print(f"bundle: {result.bundle_dir}  outputs: {result.out_dir}")


@app.command()
def train(
    dataset: Annotated[
        Path | None, typer.Option(help="dataset folder (default from params)")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="generator _truth/ folder: report the oracle")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default reports/)")] = None,
    table: Annotated[Path | None, typer.Option(help="your own feature table (CSV/Parquet)")] = None,
    target: Annotated[str | None, typer.Option(help="target column of --table")] = None,
    positive: Annotated[str | None, typer.Option(help="target value meaning default")] = None,
    time_col: Annotated[
        str | None, typer.Option(help="time column for an out-of-time split")
    ] = None,
    cv: Annotated[int | None, typer.Option(help="K-fold cross-validated AUC", min=2)] = None,
    drop: Annotated[str | None, typer.Option(help="comma-separated columns to ignore")] = None,
    protected: Annotated[
        str | None, typer.Option(help="comma-separated protected columns (fairness only)")
    ] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="do not log or register")] = False,
    model_name: Annotated[
        str | None,
        typer.Option(
            help="registered model name (default: the portfolio model's; table-<file> for --table)"
        ),
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Train LightGBM + challenger, calibrate, validate, register as 'challenger' in MLflow.

    A --table run registers under a model name of its own, never the portfolio model's.
    """
    from training.pipeline import train_dataset, train_table

    settings = _params(params)
    config = settings.train
    if no_mlflow:
        registry = config.registry.model_copy(update={"enabled": False})
        config = config.model_copy(update={"registry": registry})
    out_dir = out or settings.paths.reports
    if table is not None:
        if target is None:
            raise typer.BadParameter("--table needs --target", param_hint="--target")
        result = train_table(
            table,
            target,
            positive=positive,
            time_col=time_col,
            cv=cv,
            drop=_split_list(drop),
            protected=_split_list(protected),
            config=config,
            out_dir=out_dir,
            model_name=model_name,
            scale=settings.rating.scale,
            policy=settings.rating.policy,
        )
    else:
        if model_name is not None:  # an experiment beside the portfolio model
            if not model_name.strip():
                raise typer.BadParameter("must not be empty", param_hint="--model-name")
            registry = config.registry.model_copy(update={"registered_model_name": model_name})
            config = config.model_copy(update={"registry": registry})
        result = train_dataset(
            dataset or settings.paths.dataset,
            config,
            out_dir,
            truth_dir=truth,
            scale=settings.rating.scale,
            policy=settings.rating.policy,
        )
    _print_training(result)


def _split_list(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip()) if value else ()


@app.command()
def promote(
    model_name: Annotated[
        str | None,
        typer.Option(help="registered model to promote (default: the portfolio model)"),
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Move 'champion' to the challenger if all gates pass and it is not worse (else exit 1).

    The portfolio model's challenger must need only features the feature code computes.
    """
    from training.registry import promote as run_promote

    result = run_promote(_params(params).train, model_name=model_name)
    console.print(gate_table(result.gates, "Promotion gates"))
    console.print(result.message)
    if not result.promoted:
        raise typer.Exit(1)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 3000,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    bundle: Annotated[
        Path | None, typer.Option(help="bundle folder (default: MLflow champion)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="worker processes (default: RISKGRADE_WORKERS or 1)", min=1)
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Run the BentoML scoring service on the champion bundle (or a given bundle folder).

    This process becomes BentoML's supervisor; its workers stop when it dies, even by SIGKILL.
    """
    from serving.ports import check_port_free
    from serving.service import ServiceConfig, ServiceConfigError
    from serving.watchdog import SUPERVISOR_ENV

    check_port_free(host, port)
    settings = _params(params)
    bundle_dir, bundle_hash = _champion_bundle(settings, bundle)
    env = {
        **os.environ,
        "RISKGRADE_BUNDLE": str(bundle_dir.resolve()),
        "RISKGRADE_BUNDLE_HASH": bundle_hash,
        "RISKGRADE_TOKENS": str(settings.paths.tokens.resolve()),
        "RISKGRADE_AUDIT_DB": str(settings.paths.audit_db.resolve()),
        SUPERVISOR_ENV: str(os.getpid()),  # execve keeps the pid: this process supervises
    }
    if workers is not None:
        env["RISKGRADE_WORKERS"] = str(workers)
    try:  # refuse a bad RISKGRADE_* setting here, not in a worker's traceback
        ServiceConfig.from_env(env)
    except ServiceConfigError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    bentoml = Path(sys.executable).with_name("bentoml")
    command = [str(bentoml), "serve", "serving.service:RiskgradeService"]
    command += ["--host", host, "--port", str(port)]
    err_console.print(f"serving bundle {bundle_hash[:12]} on http://{host}:{port}")
    os.execve(command[0], command, env)


@app.command(epilog=f"Columns of --out, one row per customer: {columns_help()}.")
def score(
    raw: Annotated[str, typer.Option(help=RAW_HELP)],
    as_of: Annotated[str, typer.Option(help="rating date, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="Parquet or CSV file to write")],
    bundle: Annotated[
        Path | None, typer.Option(help="bundle folder (default: MLflow champion)")
    ] = None,
    chunk_size: Annotated[int, typer.Option(help="customers per chunk", min=1)] = 10_000,
    lang: Annotated[
        Lang, typer.Option(help="language of the reason texts", case_sensitive=False)
    ] = Lang.EN,
    engine: EngineOption = EngineName.polars,
    spark_master: SparkMasterOption = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="append one audit decision per customer (kind batch; a re-run of the same "
            "command writes none twice), so analysts can rate and override them",
        ),
    ] = False,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Rate a whole portfolio: PD, grade, tier, policy and reasons per customer.

    The same answer as POST /score for each customer (defaults, hard rules and reasons
    included), plus the model version and bundle hash on every row. With the polars engine,
    data sufficiency and people's judgement recorded in the audit store (assessments, approved
    overrides and expert ratings valid at --as-of) are applied: model_grade, final_grade, and
    the final grade's tier and policy. With --record each rating is also a decision in the
    audit log (written before the output file).
    """
    from rich.progress import Progress

    settings = _params(params)
    day = _require_date(as_of, "--as-of")
    bundle_dir, _ = _champion_bundle(settings, bundle)
    if engine is EngineName.spark:
        from serving.spark_batch import score_to_parquet

        if record:
            raise typer.BadParameter(
                "--record needs --engine polars (Spark writes Parquet only)", param_hint="--record"
            )

        source = _spark_raw(raw)
        session = _spark_session(settings, spark_master)
        counts = score_to_parquet(
            session,
            source,
            day,
            bundle_dir,
            _uri(out),
            lang.value,
        )
        console.print(frame_table(counts, f"Customers by tier at {day}", index=True))
        console.print(f"wrote {int(counts['customers'].sum()):,} ratings to {out}/as_of={day}")
        return
    from serving.batch import score_to_file
    from serving.stores import people_store

    store = people_store(environment(), settings.paths.audit_db, required=record)
    recorder = _ScoreRecorder(store, settings, raw, day, lang.value, chunk_size) if record else None
    try:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("scoring", total=None)
            scored = score_to_file(
                raw,
                day,
                bundle_dir,
                out,
                store=store,
                judgement=settings.rating.judgement,
                lifecycle=settings.rating.lifecycle,
                chunk_size=chunk_size,
                lang=lang.value,
                progress=lambda done, _: progress.update(task, completed=done),
                on_chunk=recorder,
            )
    finally:
        if store is not None:
            store.close()
    if not scored.cut.empty:
        err_console.print(scored.cut.summary())
    console.print(frame_table(scored.by_tier, f"Customers by tier at {day}", index=True))
    console.print(f"wrote {scored.rows:,} ratings to {out}")
    if recorder is not None:
        console.print(
            f"audit log: {recorder.written:,} batch decision(s) recorded, {recorder.skipped:,} "
            f"already there (run {recorder.run_id})"
        )


class _ScoreRecorder:
    """``score --record``: each scored range recorded as audit decisions before the file."""

    def __init__(
        self, store: AuditStore | None, settings: Params, raw: str, day: date, lang: str, chunk: int
    ) -> None:
        from features.source import open_raw_source

        assert store is not None  # people_store(required=True) raises instead
        self.store, self.settings, self.day, self.lang = store, settings, day, lang
        self.source = open_raw_source(raw).label
        self.chunk = chunk
        self.written = self.skipped = 0
        self.run_id = ""

    def __call__(self, rated: pd.DataFrame, tables: RawTables, rules: RatingRules) -> None:
        from management.batch_decisions import DEFAULT_CHUNK, record_scores

        recorded = record_scores(
            self.store,
            rated,
            tables,
            rules,
            as_of=self.day,
            source=self.source,
            lang=self.lang,
            chunk_size=min(self.chunk, DEFAULT_CHUNK),
        )
        self.written += recorded.written
        self.skipped += recorded.skipped
        self.run_id = recorded.run_id


@app.command("request-example")
def request_example(
    raw: Annotated[str, typer.Option(help=RAW_HELP)],
    customer: Annotated[str, typer.Option(help="customer_id")],
    as_of: Annotated[str, typer.Option(help="rating date, YYYY-MM-DD")],
    lang: Annotated[
        Lang, typer.Option(help="reason language of the answer", case_sensitive=False)
    ] = Lang.EN,
) -> None:
    """Print a valid /score request body for one customer of a raw folder or database.

    The body carries the customer's records known at --as-of: profile, statements,
    facilities with instalments, transactions and defaults.
    """
    import json

    from serving.batch import BatchError
    from serving.batch import request_example as build_example

    day = _require_date(as_of, "--as-of")
    known = _read_at(raw, day)
    if customer in known.cut.late_customers:
        raise BatchError(f"customer {customer!r} was onboarded after {day}")
    body = build_example(known.tables, customer, day, lang=lang.value)
    sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")


token_app = typer.Typer(
    help="API tokens with roles scorer, auditor, admin, analyst, approver, senior_approver.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="who holds the token")],
    role: Annotated[
        str, typer.Option(help="scorer, auditor, admin, analyst, approver or senior_approver")
    ],
    expires: Annotated[
        str | None,
        typer.Option(help="90d, 12h, or a last valid day 2026-12-31 (UTC); default: never"),
    ] = None,
    store: Annotated[Path | None, typer.Option(help="token store (default from params)")] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Create a token; it is printed once, alone on the last line; only its hash is stored.

    A running service accepts it from the next call.
    """
    from serving.auth import create_token, parse_expiry

    expires_at = parse_expiry(expires) if expires is not None else None
    path = store or _params(params).paths.tokens
    token = create_token(path, name, role, expires_at)
    until = f"until {expires_at.isoformat()}" if expires_at else "without expiry"
    err_console.print(
        f"token for '{name}' ({role}, {until}) stored as a hash in {path}; copy it now:"
    )
    sys.stdout.write(token + "\n")


@token_app.command("list")
def token_list(
    store: Annotated[Path | None, typer.Option(help="token store (default from params)")] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """List token names, roles, creation and expiry (never the tokens or their hashes)."""
    from datetime import UTC, datetime

    from serving.auth import list_tokens

    def utc(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")

    now = datetime.now(UTC)
    rows = [
        (
            info.name,
            info.role.value,
            utc(info.created_at) if info.created_at else "",
            utc(info.expires_at) if info.expires_at else "never",
            "expired" if info.expired(now) else "active",
        )
        for info in list_tokens(store or _params(params).paths.tokens)
    ]
    console.print(rows_table("Tokens", ["name", "role", "created", "expires", "status"], rows))


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="token name")],
    store: Annotated[Path | None, typer.Option(help="token store (default from params)")] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Revoke a token by name; a running service refuses it from the next call."""
    from serving.auth import TokenError, revoke_token

    if not revoke_token(store or _params(params).paths.tokens, name):
        raise TokenError(f"no token named {name!r}")
    console.print(f"revoked '{name}'")


audit_app = typer.Typer(help="The tamper-evident decision log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
AuditDbOption = Annotated[
    Path | None, typer.Option("--db", help="audit database (default from params)")
]


def _audit_store(settings: Params, db: Path | None) -> AuditStore:
    """The audit store: PostgreSQL when RISKGRADE_AUDIT_URL is set, else the SQLite file."""
    return audit_store(settings, db)


@audit_app.command("verify")
def audit_verify(db: AuditDbOption = None, params: ParamsOption = DEFAULT_PARAMS_PATH) -> None:
    """Check the whole hash chain and checkpoints (exit 1 naming the first bad record)."""
    from audit import verify

    settings = _params(params)
    if environment().audit_url and db is None:
        result = verify(_audit_store(settings, None))
    else:
        path = db or settings.paths.audit_db
        if not path.is_file():
            raise FileNotFoundError(f"audit database {path} does not exist")
        result = verify(path, key=audit_key())
    if result.ok:
        console.print(
            f"audit log intact: {result.records:,} records, {result.checkpoints:,} checkpoints"
        )
        return
    console.print(
        f"[bold red]audit log broken[/] at record {result.first_bad_id}: {result.problem}"
    )
    raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    record: Annotated[str, typer.Argument(help="row id or decision_id")],
    db: AuditDbOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Print one stored decision as JSON."""
    import json

    store = _audit_store(_params(params), db)
    key: int | str = int(record) if record.isdigit() else record
    sys.stdout.write(json.dumps(store.show(key).to_dict(), ensure_ascii=False, indent=2) + "\n")


@audit_app.command("replay")
def audit_replay(
    record: Annotated[str, typer.Argument(help="row id or decision_id")],
    db: AuditDbOption = None,
    raw: Annotated[
        str | None,
        typer.Option(
            help="decisions that read a raw store: the store to re-read (default: a batch "
            "decision's recorded source; by customer id, RISKGRADE_RAW_URL)"
        ),
    ] = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Re-score a stored decision with its recorded bundle; exit 1 if the result differs.

    A batch decision (score/monitor --record) or a decision by customer id is re-scored from
    its customer's records read again (within the recorded bounds) from the raw source, after
    checking they are those it was decided on (their SHA-256); exit 1 when they changed.
    """
    from rich.markup import escape

    from audit import replay
    from rating.model import RatingModel
    from serving.batch_record import ReadingRescorer, RecordsChangedError
    from serving.engine import Engine

    settings = _params(params)
    store = _audit_store(settings, db)
    service_store = environment().raw_url

    def load(bundle_hash: str) -> ReadingRescorer:
        folder = settings.paths.bundles / bundle_hash
        if not folder.is_dir():
            raise FileNotFoundError(f"bundle {bundle_hash} is not in the archive {folder.parent}")
        engine = Engine(RatingModel.load(folder, expected_hash=bundle_hash))
        return ReadingRescorer(engine, raw, service_store)

    key: int | str = int(record) if record.isdigit() else record
    try:
        result = replay(store, key, load)
    except RecordsChangedError as error:
        err_console.print(f"[bold red]not replayed:[/] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(error.exit_code) from None
    console.print(
        rows_table(
            f"Replay of decision {result.decision_id}",
            ["check", "value"],
            [
                ("recorded pd", f"{result.recorded_pd:.12g}"),
                ("replayed pd", f"{result.replayed_pd:.12g}"),
                ("abs diff", f"{result.abs_diff:.3g}"),
                ("grade equal", result.grade_equal),
                ("tier equal", result.tier_equal),
                ("features equal", result.features_equal),
                ("equal", result.equal),
            ],
        )
    )
    if not result.equal:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    rated_from: Annotated[
        str | None, typer.Option(help="first rating date (the decision's as_of), YYYY-MM-DD")
    ] = None,
    rated_to: Annotated[
        str | None, typer.Option(help="last rating date, YYYY-MM-DD (inclusive)")
    ] = None,
    logged_from: Annotated[
        str | None,
        typer.Option("--logged-from", "--from", help="first day recorded (UTC), YYYY-MM-DD"),
    ] = None,
    logged_to: Annotated[
        str | None,
        typer.Option("--logged-to", "--to", help="last day recorded (UTC, inclusive), YYYY-MM-DD"),
    ] = None,
    customer: Annotated[str | None, typer.Option(help="one customer's decisions")] = None,
    out: Annotated[Path | None, typer.Option(help="JSON lines file (default stdout)")] = None,
    db: AuditDbOption = None,
    params: ParamsOption = DEFAULT_PARAMS_PATH,
) -> None:
    """Export decisions as JSON lines, by rating date, recording date and/or customer.

    --from/--to are the older names of --logged-from/--logged-to (the day a record was
    written); an auditor's period is usually the rating date (--rated-from/--rated-to).
    """
    import json
    from datetime import UTC, datetime, time, timedelta

    days = {
        option: _parse_date(value, option)
        for option, value in (
            ("--rated-from", rated_from),
            ("--rated-to", rated_to),
            ("--logged-from", logged_from),
            ("--logged-to", logged_to),
        )
    }
    if customer is None and all(day is None for day in days.values()):
        raise typer.BadParameter(
            "name what to export: --rated-from/--rated-to, --logged-from/--logged-to "
            "and/or --customer",
            param_hint="--rated-from",
        )
    for first, last in (("--rated-from", "--rated-to"), ("--logged-from", "--logged-to")):
        start, end = days[first], days[last]
        if start is not None and end is not None and end < start:
            raise typer.BadParameter(f"{last} must not be before {first}", param_hint=last)
    logged_start, logged_end = days["--logged-from"], days["--logged-to"]
    store = _audit_store(_params(params), db)
    records = store.export(
        None if logged_start is None else datetime.combine(logged_start, time.min, tzinfo=UTC),
        None
        if logged_end is None
        else datetime.combine(logged_end + timedelta(days=1), time.min, tzinfo=UTC),
        customer_id=customer,
        rated_from=days["--rated-from"],
        rated_to=days["--rated-to"],
    )
    lines = [json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records]
    if out is None:
        sys.stdout.writelines(lines)
    else:
        out.write_text("".join(lines))
        err_console.print(f"exported {len(lines):,} decisions to {out}")


cli_monitor.register(app)
cli_stress.register(app)
cli_data.register(app)
cli_judgement.register(app)
cli_lifecycle.register(app)


def error_message(error: BaseException) -> str:
    """The message of a user-fixable error for the console (validation errors on one line)."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'value'}: {item['msg']}"
            for item in error.errors()
        )
    # KeyError subclasses (a record not found) would print their message quoted.
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    # A multi-line message (a validation report, a YAML parser's) becomes one line.
    head, *rest = (str(error) or type(error).__name__).strip().splitlines() or [""]
    details = [line.strip() for line in rest if line.strip()]
    return f"{head.rstrip(':')}: {'; '.join(details)}" if details else head


def _debug() -> bool:
    """``RISKGRADE_DEBUG`` is set (false when the settings themselves are invalid)."""
    from serving.settings import SettingsError

    try:
        return environment().debug
    except SettingsError:
        return False


def main() -> None:
    """Console entry point: runs the app and turns user-fixable errors into one clear line.

    Caught: usage errors (bad or missing option), every project error (``RiskgradeError``),
    the audit store's errors, pydantic validation, ``ValueError`` (unreadable files, bad
    values) and ``OSError`` (missing, unreadable or unwritable paths): printed as
    ``error: <message>``, exit 2. Any other exception is a bug and keeps its traceback;
    ``RISKGRADE_DEBUG=1`` shows it for the caught ones too.
    """
    import warnings

    from pydantic import ValidationError
    from rich.markup import escape

    from audit import AuditError
    from features.errors import RiskgradeError

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
    warnings.filterwarnings("ignore", category=FutureWarning)

    def fail(message: str, code: int = 2) -> NoReturn:
        err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        sys.exit(code)

    try:
        code = app(prog_name="riskgrade", standalone_mode=False)
    except typer.Abort:
        fail("aborted", 1)
    except typer.TyperException as error:  # a usage error: bad option value, missing option
        if type(error).__name__ == "NoArgsIsHelpError":  # as typer checks it: help is shown
            sys.exit(2)
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        fail(f"{error.format_message()}{hint}", getattr(error, "exit_code", 2))
    except (RiskgradeError, AuditError, ValidationError, ValueError, OSError) as error:
        if _debug():
            raise
        fail(error_message(error))
    sys.exit(code if isinstance(code, int) else 0)
