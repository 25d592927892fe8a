"""A catalogue of hostile and broken raw-data folders, each of which must be refused.

Every case starts from a small valid generated portfolio, breaks one thing (a value, a file, a
format) and is then run through ``riskgrade validate --strict`` at the extract date (exit 1, the
problem listed), through ``features.validate.validate_raw_dir`` (strict: the expected table in
the report) and through the
dataset pipeline (``load_raw`` -> ``build_dataset`` -> ``write_dataset``), which must raise a
``RawValidationError`` naming the problem and leave no output folder behind.

``REQUEST_CASES`` does the same for the scoring API: each breaks one thing in a valid /score
body (or a query parameter) and must get a 422 naming the field, never a 5xx; dates at the
business bounds (``features.schema.MIN_DATE``..``MAX_DATE``) are accepted, one day beyond not.
"""

from __future__ import annotations

import json
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
        "maturity_past_date_bound",
        "a facility maturing 2201-01-01, a day past the upper date bound",
        "credit_facilities",
        _set("credit_facilities", "maturity_date", pd.Timestamp("2201-01-01")),
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


# -- hostile requests: the scoring API ------------------------------------------------------

Send = Callable[[str, str, Any, dict[str, str] | None, str], tuple[int, Any]]
"""``send(method, path, json_body, query_params, role)`` -> (status, parsed JSON body)."""


@dataclass(frozen=True)
class RequestCase:
    """One hostile API request: how to break a valid /score body and what must come back.

    ``status`` 422 must name ``field`` (as a field location or inside the message of a
    cross-field error); a 200 case checks a value at a bound is accepted.
    """

    name: str
    description: str
    method: str
    path: str
    field: str
    status: int = 422
    break_body: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    query: dict[str, str] | None = None
    role: str = "scorer"


def _body_set(
    path: tuple[str | int, ...], value: Any
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(body: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(body))
        target = out
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return out

    return apply


def _in_batch(
    inner: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(body: dict[str, Any]) -> dict[str, Any]:
        return {"requests": [body, inner(body)]}

    return apply


def _with_defaults(*records: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "defaults": list(records)}

    return apply


_FAR = "9999-12-31"

REQUEST_CASES: tuple[RequestCase, ...] = (
    RequestCase(
        "as_of_9999",
        "as_of 9999-12-31: its day-after and 12-month windows would overflow",
        "POST",
        "/score",
        "as_of",
        break_body=_body_set(("as_of",), _FAR),
    ),
    RequestCase(
        "as_of_9999_explain",
        "as_of 9999-12-31 on /explain",
        "POST",
        "/explain",
        "as_of",
        break_body=_body_set(("as_of",), _FAR),
    ),
    RequestCase(
        "as_of_9999_in_batch",
        "the second request of a batch dated 9999-12-31",
        "POST",
        "/score_batch",
        "requests.1.as_of",
        break_body=_in_batch(_body_set(("as_of",), _FAR)),
    ),
    RequestCase(
        "as_of_9999_feature_vector",
        "a feature-vector request dated 9999-12-31",
        "POST",
        "/score",
        "as_of",
        break_body=lambda body: {
            "as_of": _FAR,
            "feature_vector": {"customer_id": "V1", "values": {}},
        },
    ),
    RequestCase(
        "as_of_before_1900",
        "as_of 1899-12-31, before the lower date bound",
        "POST",
        "/score",
        "as_of",
        break_body=_body_set(("as_of",), "1899-12-31"),
    ),
    RequestCase(
        "maturity_past_bound",
        "a facility maturing 2201-01-01, a day past the upper date bound",
        "POST",
        "/score",
        "facilities.0.maturity_date",
        break_body=_body_set(("facilities", 0, "maturity_date"), "2201-01-01"),
    ),
    RequestCase(
        "maturity_at_bound",
        "a facility maturing 2200-12-31, on the upper date bound: accepted",
        "POST",
        "/score",
        "",
        status=200,
        break_body=_body_set(("facilities", 0, "maturity_date"), "2200-12-31"),
    ),
    RequestCase(
        "due_date_9999",
        "an instalment due 9999-12-31",
        "POST",
        "/score",
        "facilities.0.instalments.0.due_date",
        break_body=_body_set(("facilities", 0, "instalments", 0, "due_date"), _FAR),
    ),
    RequestCase(
        "default_type_unknown",
        "a default of a type outside the contract (bankrupt)",
        "POST",
        "/score",
        "defaults.0.default_type",
        break_body=_with_defaults({"default_date": "2024-01-31", "default_type": "bankrupt"}),
    ),
    RequestCase(
        "default_unknown_field",
        "a default record with an unknown field",
        "POST",
        "/score",
        "defaults.0.amount",
        break_body=_with_defaults(
            {"default_date": "2024-01-31", "default_type": "dpd90", "amount": 1.0}
        ),
    ),
    RequestCase(
        "default_9999",
        "a default dated 9999-12-31",
        "POST",
        "/score",
        "defaults.0.default_date",
        break_body=_with_defaults({"default_date": _FAR, "default_type": "dpd90"}),
    ),
    RequestCase(
        "review_search_to_9999",
        "audit search up to 9999-12-31 (the whole last day would overflow)",
        "GET",
        "/review/api/decisions",
        "to",
        query={"to": _FAR},
        role="auditor",
    ),
)


def check_request_case(case: RequestCase, body: dict[str, Any], send: Send) -> dict[str, Any]:
    """Send one hostile request (built from a valid /score ``body``) and check the answer."""
    sent = case.break_body(body) if case.break_body is not None else None
    status, answer = send(case.method, case.path, sent, case.query, case.role)
    error = answer.get("error") if isinstance(answer, dict) else None
    fields = [f.get("loc", "") for f in (error or {}).get("fields", [])]
    messages = " ".join([str((error or {}).get("message", ""))] + [str(f) for f in fields])
    named = case.status != 422 or case.field in fields or case.field in messages
    return {
        "case": case.name,
        "description": case.description,
        "status": status,
        "passed": status == case.status and named,
        "fields": fields,
    }


def run_request_catalogue(
    base: str, headers: Callable[[str], dict[str, str]], body: dict[str, Any]
) -> dict[str, Any]:
    """Every hostile request against a running server at ``base``."""
    import httpx

    def send(
        method: str, path: str, payload: Any, query: dict[str, str] | None, role: str
    ) -> tuple[int, Any]:
        response = httpx.request(
            method, base + path, json=payload, params=query, headers=headers(role), timeout=30
        )
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    results = [check_request_case(case, body, send) for case in REQUEST_CASES]
    return {
        "passed": all(r["passed"] for r in results),
        "cases": len(results),
        "answered_as_expected": sum(r["passed"] for r in results),
        "results": results,
    }
