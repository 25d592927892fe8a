"""A catalogue of hostile and broken raw-data folders, each of which must be refused.

Every case starts from a small valid generated portfolio, breaks one thing (a value, a file, a
format) and is then run through ``riskgrade validate --strict`` at the extract date (exit 1, the
problem listed), through ``features.validate.validate_raw_dir`` (strict: the expected table in
the report) and through the
dataset pipeline (``load_raw`` -> ``build_dataset`` -> ``write_dataset``), which must raise a
``RawValidationError`` naming the problem and leave no output folder behind.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.io import RawTables, write_raw
from features.synthetic import GeneratorConfig, generate_tables

AS_OF = date(2024, 12, 31)
Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Case:
    """One hostile folder: how to break it and which table the report must blame."""

    name: str
    description: str
    table: str
    break_tables: Callable[[Tables], Tables] | None = None
    break_files: Callable[[Path], None] | None = None


def base_tables(customers: int = 30, seed: int = 5) -> RawTables:
    """A small valid portfolio (three years, extract date ``AS_OF``)."""
    config = GeneratorConfig(
        customers=customers, seed=seed, start=date(2022, 1, 1), end=AS_OF, mess_rate=0.0
    )
    raw, _ = generate_tables(config)
    return raw


def _copy(tables: Tables) -> Tables:
    return {name: frame.copy() for name, frame in tables.items()}


def _set(table: str, column: str, value: Any, row: int = 0) -> Callable[[Tables], Tables]:
    def apply(tables: Tables) -> Tables:
        out = _copy(tables)
        frame = out[table]
        frame.loc[frame.index[row], column] = value
        return out

    return apply


def _duplicate_row(table: str) -> Callable[[Tables], Tables]:
    def apply(tables: Tables) -> Tables:
        out = _copy(tables)
        out[table] = pd.concat([out[table], out[table].iloc[[0]]], ignore_index=True)
        return out

    return apply


def _cents(tables: Tables) -> Tables:
    """One customer's statements reported in fen (x100): a large firm crosses the bound."""
    out = _copy(tables)
    frame = out["financial_statements"]
    amounts = [
        "total_assets", "total_liabilities", "current_assets", "current_liabilities", "cash",
        "revenue", "operating_costs", "net_income", "operating_cash_flow", "interest_expense",
    ]  # fmt: skip
    row = frame.index[0]
    scale = 5e11 / max(float(frame.loc[row, "total_assets"]), 1.0)  # a 500 bn yuan group
    frame.loc[row, amounts] = frame.loc[row, amounts].astype(float) * scale * 100
    return out


def _empty(table: str) -> Callable[[Tables], Tables]:
    def apply(tables: Tables) -> Tables:
        out = _copy(tables)
        out[table] = out[table].iloc[0:0]
        return out

    return apply


def _drop_column(table: str, column: str) -> Callable[[Tables], Tables]:
    def apply(tables: Tables) -> Tables:
        out = _copy(tables)
        out[table] = out[table].drop(columns=[column])
        return out

    return apply


def _extra_column(tables: Tables) -> Tables:
    out = _copy(tables)
    out["customers"]["credit_score_vendor"] = 1.0
    return out


def _future(tables: Tables) -> Tables:
    out = _copy(tables)
    frame = out["transactions"]
    frame.loc[frame.index[0], "ts"] = pd.Timestamp(AS_OF) + pd.Timedelta(days=45)
    return out


def _current_gt_total(tables: Tables) -> Tables:
    out = _copy(tables)
    frame = out["financial_statements"]
    row = frame.index[0]
    frame.loc[row, "current_assets"] = float(frame.loc[row, "total_assets"]) * 2 + 1
    return out


def _published_before_end(tables: Tables) -> Tables:
    out = _copy(tables)
    frame = out["financial_statements"]
    row = frame.index[0]
    frame.loc[row, "published_date"] = frame.loc[row, "period_end"] - pd.Timedelta(days=10)
    return out


def _onboarded_before_founded(tables: Tables) -> Tables:
    out = _copy(tables)
    frame = out["customers"]
    row = frame.index[0]
    frame.loc[row, "onboarding_date"] = frame.loc[row, "founded_date"] - pd.Timedelta(days=400)
    return out


def _truncate(table: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / f"{table}.parquet"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return apply


def _remove(table: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / f"{table}.parquet").unlink()

    return apply


def _as_csv(folder: Path, table: str) -> tuple[Path, list[str]]:
    path = folder / f"{table}.parquet"
    frame = pd.read_parquet(path)
    path.unlink()
    csv = folder / f"{table}.csv"
    frame.to_csv(csv, index=False)
    return csv, csv.read_text().splitlines()


def _csv_shifted_row(folder: Path) -> None:
    """One data row of customers.csv gets an extra leading field: a ragged file."""
    csv, lines = _as_csv(folder, "customers")
    lines[2] = "X," + lines[2]
    csv.write_text("\n".join(lines) + "\n")


def _csv_shifted_header(folder: Path) -> None:
    """customers.csv loses its first header name: every value lands one column to the left."""
    csv, lines = _as_csv(folder, "customers")
    lines[0] = lines[0].split(",", 1)[1]
    csv.write_text("\n".join(lines) + "\n")


def _csv_bad_date(folder: Path) -> None:
    """A date that is no date (month 13) in credit_facilities.csv."""
    csv, lines = _as_csv(folder, "credit_facilities")
    header = lines[0].split(",")
    fields = lines[1].split(",")
    fields[header.index("opened")] = "2023-13-45"
    lines[1] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n")


def _wrong_type(tables: Tables) -> Tables:
    out = _copy(tables)
    frame = out["financial_statements"]
    frame["revenue"] = frame["revenue"].astype(str)
    frame.loc[frame.index[0], "revenue"] = "twelve million"
    return out


CASES: tuple[Case, ...] = (
    Case(
        "negative_assets",
        "total_assets < 0",
        "financial_statements",
        _set("financial_statements", "total_assets", -1e6),
    ),
    Case(
        "amounts_in_cents",
        "statements of a large group reported in fen (x100): above the 1e13 yuan bound",
        "financial_statements",
        _cents,
    ),
    Case("future_transaction", "a transaction 45 days after as-of", "transactions", _future),
    Case(
        "duplicated_customer_id",
        "a customer row repeated",
        "customers",
        _duplicate_row("customers"),
    ),
    Case(
        "duplicated_txn_id",
        "a transaction row repeated",
        "transactions",
        _duplicate_row("transactions"),
    ),
    Case("wrong_type", "revenue holds text", "financial_statements", _wrong_type),
    Case(
        "nan_amount",
        "revenue is NaN",
        "financial_statements",
        _set("financial_statements", "revenue", np.nan),
    ),
    Case(
        "inf_amount",
        "total_liabilities is +inf",
        "financial_statements",
        _set("financial_statements", "total_liabilities", np.inf),
    ),
    Case(
        "unknown_customer",
        "a transaction of a customer not in customers",
        "transactions",
        _set("transactions", "customer_id", "GHOST-0001"),
    ),
    Case("empty_customers", "customers has no rows", "customers", _empty("customers")),
    Case(
        "missing_column",
        "transactions without its channel column",
        "transactions",
        _drop_column("transactions", "channel"),
    ),
    Case("extra_column", "customers with an unknown column", "customers", _extra_column),
    Case(
        "bad_enum",
        "transaction direction 'sideways'",
        "transactions",
        _set("transactions", "direction", "sideways"),
    ),
    Case(
        "current_gt_total",
        "current_assets above total_assets",
        "financial_statements",
        _current_gt_total,
    ),
    Case(
        "published_before_period_end",
        "a statement published before its period ended",
        "financial_statements",
        _published_before_end,
    ),
    Case(
        "onboarded_before_founded",
        "onboarding 400 days before incorporation",
        "customers",
        _onboarded_before_founded,
    ),
    Case(
        "unknown_facility",
        "an instalment of a facility not in credit_facilities",
        "repayments",
        _set("repayments", "facility_id", "NO-SUCH-FACILITY"),
    ),
    Case(
        "paid_without_date",
        "amount_paid > 0 with no paid_date",
        "repayments",
        _set("repayments", "paid_date", pd.NaT),
    ),
    Case(
        "truncated_parquet",
        "transactions.parquet cut in half",
        "transactions",
        break_files=_truncate("transactions"),
    ),
    Case("missing_table", "defaults file absent", "defaults", break_files=_remove("defaults")),
    Case(
        "csv_shifted_row",
        "customers.csv with one row shifted by an extra field",
        "customers",
        break_files=_csv_shifted_row,
    ),
    Case(
        "csv_shifted_header",
        "customers.csv header missing its first name: values shifted one column",
        "customers",
        break_files=_csv_shifted_header,
    ),
    Case(
        "csv_bad_date",
        "credit_facilities.csv with the date 2023-13-45",
        "credit_facilities",
        break_files=_csv_bad_date,
    ),
)


def write_case(case: Case, base: RawTables, folder: Path) -> Path:
    """Write the broken folder of ``case`` (replacing ``folder``); returns it."""
    shutil.rmtree(folder, ignore_errors=True)
    tables = dict(base.items())
    if case.break_tables is not None:
        tables = case.break_tables(tables)
    write_raw(RawTables.from_mapping(tables), folder)
    if case.break_files is not None:
        case.break_files(folder)
    return folder


def pipeline(raw_dir: Path, out_dir: Path, as_of: date = AS_OF) -> dict[str, object]:
    """The dataset pipeline: validated read, point-in-time dataset, atomic write."""
    from features.build import build_dataset, write_dataset
    from features.validate import load_raw

    raw = load_raw(raw_dir, as_of)
    return write_dataset(build_dataset(raw), out_dir)


def cli_validate(raw_dir: Path, as_of: date = AS_OF) -> tuple[int, str]:
    """``riskgrade validate RAW --as-of DATE --strict`` in process: exit code and output.

    ``DATE`` is the extract date, so with ``--strict`` a record after it is a failure.
    """
    from typer.testing import CliRunner

    from riskgrade.cli import app

    args = ["validate", str(raw_dir), "--as-of", as_of.isoformat(), "--strict"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    return result.exit_code, result.output


def check_case(case: Case, base: RawTables, work: Path) -> dict[str, Any]:
    """Run one case through the CLI, the validator and the pipeline."""
    from features.validate import RawValidationError, validate_raw_dir

    folder = write_case(case, base, work / case.name / "raw")
    out_dir = work / case.name / "dataset"
    started = time.perf_counter()
    exit_code, output = cli_validate(folder)
    report = validate_raw_dir(folder, AS_OF, strict=True)
    blamed = sorted({p.table for p in report.problems})
    try:
        pipeline(folder, out_dir)
        pipeline_error = ""
    except RawValidationError as error:
        pipeline_error = str(error)
    except Exception as error:  # a crash is a finding: record it, do not hide it
        pipeline_error = f"UNEXPECTED {type(error).__name__}: {error}"
    leftovers = [p.name for p in out_dir.parent.iterdir() if p.name != "raw"]
    checks = {
        # rich shortens long table names in narrow terminals: match the first 12 characters
        "cli_exit_1": exit_code == 1 and "problem(s)" in output and case.table[:12] in output,
        "validator_rejects": not report.ok and case.table in blamed,
        "pipeline_rejects": pipeline_error.startswith("raw data failed validation")
        and case.table in pipeline_error,
        "no_partial_output": not leftovers,
    }
    return {
        "case": case.name,
        "description": case.description,
        "passed": all(checks.values()),
        **checks,
        "message": report.summary().splitlines()[0] if report.problems else "",
        "seconds": round(time.perf_counter() - started, 2),
    }


def run_catalogue(work: Path) -> dict[str, Any]:
    """Every case plus a control (the unbroken folder must pass everywhere)."""
    base = base_tables()
    control = work / "control"
    shutil.rmtree(control, ignore_errors=True)
    write_raw(base, control / "raw")
    exit_code, _ = cli_validate(control / "raw")
    card = pipeline(control / "raw", control / "dataset")
    results = [check_case(case, base, work) for case in CASES]
    return {
        "passed": exit_code == 0 and bool(card) and all(r["passed"] for r in results),
        "control_valid": exit_code == 0,
        "cases": len(results),
        "rejected_everywhere": sum(r["passed"] for r in results),
        "results": results,
    }
