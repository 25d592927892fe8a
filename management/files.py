"""Judgement as files: importing assessments from CSV, exporting everything for auditors.

Import is all or nothing: every row is checked (customer known, date not in the future, every
factor and answer of the questionnaire), every problem is reported at once, and only a clean
file is recorded, in one audit transaction. Export writes, from the audit chain, the
assessments, the overrides and expert ratings with their decisions (proposer, approver,
comments), and every judgement event as stored (ids and hashes).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pandas as pd

from audit import AuditStore
from features.io import write_parquet_atomic
from management.errors import ImportReportError
from management.events import Actor, aware, iter_events, utc_now
from management.judgement import (
    ASSESSMENT_RECORDED,
    OVERRIDE_KINDS,
    AssessmentInput,
    RatingRules,
    RecordedAssessment,
    assessment_event,
    assessment_of,
    assessments,
    check_actor,
    override_view,
    overrides,
    rated_tier,
)
from management.proposals import ProposalStatus
from rating.judgement import JudgementError, Role

ID_COLUMNS = ("customer_id", "as_of")
"""Required columns of an assessments CSV; then one column per factor and ``comment``."""
OPTIONAL_COLUMNS = ("comment",)

ExportFormat = Literal["csv", "parquet"]


def read_assessments(path: Path) -> pd.DataFrame:
    """An assessments CSV as strings (empty cells as '').

    Raises:
        ImportReportError: if the file cannot be read as CSV.
    """
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ImportReportError(str(path), [f"cannot read as CSV: {error}"]) from error


def check_assessments(
    table: pd.DataFrame,
    rules: RatingRules,
    customers: Collection[str],
    today: date,
    source: str = "file",
) -> list[AssessmentInput]:
    """Every row of an assessments table as an input, or one report of every problem.

    Columns: ``customer_id``, ``as_of`` (YYYY-MM-DD), one per factor code of the questionnaire
    (its answer code), and optionally ``comment``.

    Raises:
        ImportReportError: listing every problem (row numbers as in the file, header = 1).
    """
    config = rules.judgement.qualitative
    factors = [f.code for f in config.factors]
    columns = list(table.columns)
    problems: list[str] = []
    missing = [c for c in (*ID_COLUMNS, *factors) if c not in columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unknown = [c for c in columns if c not in (*ID_COLUMNS, *OPTIONAL_COLUMNS, *factors)]
    for column in unknown:
        problems.append(
            f"column '{column}': unknown factor of questionnaire {config.version} "
            f"(expected {', '.join(factors)})"
        )
    if table.empty:
        problems.append("no rows")
    if problems and (missing or table.empty):
        raise ImportReportError(source, problems)
    known = set(customers)
    items: list[AssessmentInput] = []
    for n, row in enumerate(table.itertuples(index=False), start=2):
        values = row._asdict()
        where = f"row {n}"
        customer = str(values["customer_id"]).strip()
        if not customer:
            problems.append(f"{where}: customer_id is empty")
        elif customer not in known:
            problems.append(f"{where}: unknown customer '{customer}'")
        text = str(values["as_of"]).strip()
        try:
            day = date.fromisoformat(text)
        except ValueError:
            problems.append(f"{where}: as_of '{text}' is not a date (YYYY-MM-DD)")
            day = None
        if day is not None and day > today:
            problems.append(f"{where}: as_of {day.isoformat()} is in the future (today {today})")
        answers = {code: str(values[code]).strip() for code in factors}
        for code, answer in answers.items():
            if not answer:
                problems.append(f"{where}: no answer for factor '{code}'")
                continue
            try:
                config.factor(code).answer(answer)
            except JudgementError as error:
                problems.append(f"{where}: {error}")
        if day is not None:
            comment = str(values.get("comment", "") or "")
            items.append(AssessmentInput(customer, day, answers, comment))
    if problems:
        raise ImportReportError(source, problems)
    return items


def import_assessments(
    store: AuditStore,
    rules: RatingRules,
    actor: Actor,
    items: list[AssessmentInput],
    *,
    at: datetime | None = None,
) -> list[RecordedAssessment]:
    """Record checked assessments in one audit transaction (all or none).

    Raises:
        ForbiddenError: if ``actor`` is not an analyst or above.
        AuditUnavailableError: if the store cannot commit (nothing is recorded).
    """
    at = aware(at or utc_now())
    check_actor(actor, Role.ANALYST, "record assessments")
    events = [
        assessment_event(rules, actor, item, rated_tier(store, rules, item), at) for item in items
    ]
    return [assessment_of(e) for e in store.append_events(events)]


def assessment_table(store: AuditStore) -> pd.DataFrame:
    """Every assessment: who, when, the answers (one column per factor), score and notches."""
    rows = []
    for recorded in assessments(store):
        view = recorded.to_dict()
        answers = view.pop("answers")
        rows.append({**view, **{f"answer_{k}": v for k, v in answers.items()}})
    return pd.DataFrame(rows)


def override_table(store: AuditStore, status: ProposalStatus | None = None) -> pd.DataFrame:
    """Every override and expert rating with its decision: proposer, approver, comments."""
    return pd.DataFrame([override_view(s) for s in overrides(store, status=status)])


def event_table(store: AuditStore) -> pd.DataFrame:
    """Every judgement event as stored in the chain (record id, kind, who, why, hash)."""
    kinds = [ASSESSMENT_RECORDED] + [
        f"{kind}.{status.value if status is not ProposalStatus.PENDING else 'proposed'}"
        for kind in OVERRIDE_KINDS
        for status in ProposalStatus
    ]
    found = sorted((e for k in kinds for e in iter_events(store, kind=k)), key=lambda e: e.id)
    columns = ("id", "event_id", "kind", "actor", "role", "subject", "reason", "occurred_at")
    rows = [{**{c: getattr(e, c) for c in columns}, "hash": e.hash} for e in found]
    return pd.DataFrame(rows, columns=[*columns, "hash"])


def export_judgement(store: AuditStore, out: Path, fmt: ExportFormat = "csv") -> dict[str, Path]:
    """Write ``assessments``, ``overrides`` and ``events`` tables to ``out`` for auditors.

    Returns:
        Table name -> file written.
    """
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "assessments": assessment_table(store),
        "overrides": override_table(store),
        "events": event_table(store),
    }
    written = {}
    for name, frame in tables.items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            tmp = path.with_suffix(".csv.tmp")
            frame.to_csv(tmp, index=False)
            tmp.replace(path)
        else:
            write_parquet_atomic(
                frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}), path
            )
        written[name] = path
    return written
