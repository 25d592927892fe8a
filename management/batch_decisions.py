"""Batch ratings in the audit chain: one model decision per customer of a batch run.

``riskgrade score --record`` and ``riskgrade monitor --record`` rate a whole portfolio; this
module writes each customer's rating to the audit log as a decision of kind ``batch``, in the
record shape ``/score`` writes (`audit.DecisionRecord`): model version, bundle hash, policy
version, PD, the model's grade and final tier in the columns, and in the payload the response
``/score`` would give (``as_of``, ``pd``, ``grade`` = model grade, ``model_grade``,
``final_grade``, ``tier``, ``policy``, ``reasons``, hard rules, default, data sufficiency,
judgement applied), the customer's segment, the run, and what was read (``read``: source,
as-of bounds, rows per table and the SHA-256 of the customer's records, `features.digest`).
So ``GET /customers/{id}/rating``, overrides, the history, the analysts' queue and the
auditor's export see batch-rated customers as they see ``/score``'s.

The request body kept for a batch decision is what a request by customer id carries
(``customer_id``, ``as_of``, ``lang``) plus ``read``: replay reads the customer's records
again from the source, checks their digest and re-scores them (``serving.batch_record``).
No feature vector is stored per customer (a portfolio's would dwarf the log).

Writes are bulk (one transaction per chunk of customers, one fsync) and idempotent per
(run, customer): the decision id derives from both, ids already in the log are skipped, and
a concurrent writer of the same run loses on the store's unique decision id
(`audit.AuditDuplicateDecisionError`) and skips what the other wrote.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from audit import AuditDuplicateDecisionError, AuditStore, DecisionRecord, canonical_json
from features.asof import read_bounds
from features.digest import iter_record_digests
from features.io import RawTables
from management.judgement import RatingRules, sufficiency_view
from rating.output import POLICY_PREFIX
from rating.policy import CreditPolicy, Tier
from rating.reasons import MAX_REASONS
from rating.sufficiency import Sufficiency, sufficiency_of

BATCH_KIND = "batch"
"""Decision kind of a batch rating."""
BATCH_CALLER = "riskgrade-batch"
"""Who a batch decision is recorded for (the command line, not a token)."""
DEFAULT_CHUNK = 2_000
"""Customers per transaction."""

_REQUIRED = (
    "customer_id",
    "pd",
    "grade",
    "tier",
    "in_default",
    "hard_rules",
    "model_grade",
    "final_grade",
    "model_version",
    "bundle_hash",
    "policy_version",
)


class BatchRecordError(ValueError):
    """A frame that cannot be recorded (a column missing)."""


@dataclass(frozen=True)
class BatchRun:
    """One batch run, as its decisions record it."""

    run_id: str
    command: str
    """``score`` or ``monitor``."""
    as_of: date
    source: str
    """The raw source's label (folder path, or database URL without its password)."""
    lang: str = "en"
    caller: str = BATCH_CALLER

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (kept in each decision's payload)."""
        return {"run_id": self.run_id, "command": self.command, "source": self.source}


def score_run_id(as_of: date, bundle_hash: str, source: str, lang: str) -> str:
    """The run id of ``riskgrade score`` at ``as_of`` on ``source`` with a bundle.

    Re-running the command gives the same run, so its decisions are not written twice.
    """
    key = canonical_json(
        {"command": "score", "as_of": as_of.isoformat(), "bundle": bundle_hash, "source": source}
        | {"lang": lang}
    )
    return "score-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def batch_decision_id(run_id: str, customer_id: str) -> str:
    """The decision id of ``customer_id`` in run ``run_id`` (deterministic, 48 characters)."""
    digest = hashlib.sha256(f"{run_id}\x1f{customer_id}".encode()).hexdigest()
    return "batch-" + digest[:42]


def _value(value: Any) -> Any:
    """A cell as JSON (NaN, NaT and pd.NA as None, numpy scalars as Python)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _day(value: Any) -> str | None:
    value = _value(value)
    return None if value is None else pd.Timestamp(value).date().isoformat()


class _Responder:
    """Builds the ``/score``-shaped response of a judged batch row."""

    def __init__(self, rules: RatingRules, frame_columns: Iterable[str]) -> None:
        columns = set(frame_columns)
        self.rules = rules
        self.hard = {rule.code: rule for rule in rules.policy.hard_rules}
        config = rules.judgement.data_sufficiency
        self.sufficiency = {r.code: r for r in sufficiency_of(None, 0, 0, config).reasons}
        self.policy_fields = [f for f in CreditPolicy.model_fields if POLICY_PREFIX + f in columns]
        self.groups = sorted(c for c in columns if c.startswith("group_"))
        self.reasons = [k for k in range(1, MAX_REASONS + 1) if f"reason_{k}" in columns]
        self.columns = columns

    def __call__(self, row: Mapping[str, Any], decision_id: str, run: BatchRun) -> dict[str, Any]:
        zh = run.lang == "zh"
        get = row.get
        reasons = []
        if self.reasons:
            for k in self.reasons:
                code = _value(get(f"reason_{k}"))
                if code is None:
                    continue
                reasons.append(
                    {
                        "code": code,
                        "text": _value(get(f"reason_{k}_text")),
                        "contribution": _value(get(f"reason_{k}_contribution")),
                    }
                )
        elif "reasons" in self.columns:
            codes = str(_value(get("reasons")) or "").split(";")
            reasons = [{"code": c, "text": None, "contribution": None} for c in codes if c]
        hard_rules = []
        for code in (c for c in str(_value(get("hard_rules")) or "").split(";") if c):
            rule = self.hard.get(code)
            text = (rule.text_zh if zh else rule.text_en) if rule else code
            hard_rules.append({"code": code, "flag": rule.flag if rule else code, "text": text})
        default = None
        if bool(get("in_default")):
            default = {
                "default_date": _day(get("default_date")),
                "default_type": _value(get("default_type")),
            }
        codes = [c for c in str(_value(get("sufficiency_reasons")) or "").split(";") if c]
        sufficiency = Sufficiency(
            sufficient=not bool(get("insufficient_data")),
            reasons=tuple(self.sufficiency[c] for c in codes if c in self.sufficiency),
        )
        tier = str(get("tier"))
        if self.policy_fields:
            policy = {f: _value(get(POLICY_PREFIX + f)) for f in self.policy_fields}
        else:
            policy = self.rules.policy.policy_of_tier(tier).model_dump(mode="json")
        response: dict[str, Any] = {
            "decision_id": decision_id,
            "customer_id": str(get("customer_id")),
            "as_of": run.as_of.isoformat(),
            "pd": float(row["pd"]),
            "score": _value(get("score")),
            "grade": str(get("grade")),
            "tier": tier,
            "model_tier": _value(get("model_tier")),
            "policy": policy,
            "reasons": reasons,
            "default": default,
            "hard_rules": hard_rules,
            "groups": {c.removeprefix("group_"): _value(get(c)) for c in self.groups},
            "model_version": str(get("model_version")),
            "bundle_hash": str(get("bundle_hash")),
            "policy_version": str(get("policy_version")),
            "lang": run.lang,
            "data_sufficiency": sufficiency_view(sufficiency),
            "insufficient_data": bool(get("insufficient_data", False)),
            "provisional": bool(get("provisional", False)),
            "model_grade": str(get("model_grade")),
            "qualitative_notches": int(_value(get("qualitative_notches")) or 0),
            "assessment_id": _value(get("assessment_id")),
            "override_id": _value(get("override_id")),
            "final_grade": str(get("final_grade")),
            "status": _value(get("status")) or "normal",
            "measures": [m for m in str(_value(get("measures")) or "").split(";") if m],
        }
        return response


def batch_records(
    frame: pd.DataFrame,
    run: BatchRun,
    rules: RatingRules,
    reads: Mapping[str, tuple[str, dict[str, int]]],
    segments: Mapping[str, Mapping[str, str]] | None = None,
) -> list[DecisionRecord]:
    """The audit decisions of a chunk of judged batch ratings (not yet appended).

    Args:
        frame: rows of `management.portfolio.judge_scores` (columns
            `rating.output.judged_column_names`; a monitoring run's need the `_REQUIRED` ones).
        run: the batch run.
        rules: the scale, policy and judgement settings the rows were judged with.
        reads: customer id -> (SHA-256 of its records, rows per table) (`features.digest`).
        segments: customer id -> its ``industry``, ``region`` and ``size_class``.

    Raises:
        BatchRecordError: if a needed column is missing or a customer has no read.
    """
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise BatchRecordError(f"batch ratings lack column(s): {', '.join(missing)}")
    respond = _Responder(rules, frame.columns)
    bounds = read_bounds(run.as_of)
    segments = segments or {}
    out = []
    for row in frame.to_dict("records"):
        cid = str(row["customer_id"])
        if cid not in reads:
            raise BatchRecordError(f"no digest of the records of customer {cid}")
        sha, rows = reads[cid]
        decision_id = batch_decision_id(run.run_id, cid)
        response = respond(row, decision_id, run)
        read = {
            "source": run.source,
            "customer_id": cid,
            "as_of": run.as_of.isoformat(),
            "bounds": bounds,
            "rows": rows,
            "records_sha256": sha,
        }
        request = {"customer_id": cid, "as_of": run.as_of.isoformat(), "lang": run.lang}
        payload: dict[str, Any] = {"response": response, "read": read, "run": run.to_dict()}
        if cid in segments:
            payload["segment"] = dict(segments[cid])
        out.append(
            DecisionRecord(
                decision_id=decision_id,
                kind=BATCH_KIND,
                caller=run.caller,
                customer_id=cid,
                model_version=response["model_version"],
                bundle_hash=response["bundle_hash"],
                policy_version=response["policy_version"],
                pd=response["pd"],
                grade=response["grade"],
                tier=_rated_tier(response),
                request_body=canonical_json({**request, "read": read}).encode(),
                payload=payload,
            )
        )
    return out


def _rated_tier(response: Mapping[str, Any]) -> str:
    """The model's tier after hard rules and default, before judgement (what replay gives)."""
    if response["hard_rules"] or response["default"] is not None:
        return Tier.RESTRICTED.value
    return str(response["model_tier"] or response["tier"])


@dataclass(frozen=True)
class RecordedBatch:
    """What recording a batch run wrote."""

    run_id: str
    customers: int
    written: int
    """Decisions appended by this call."""
    skipped: int
    """Decisions already in the log (an earlier call of the same run)."""


def record_batch(
    store: AuditStore,
    rated: pd.DataFrame,
    tables: RawTables,
    run: BatchRun,
    rules: RatingRules,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> RecordedBatch:
    """Append one ``batch`` decision per customer of ``rated``, one transaction per chunk.

    Idempotent per (run, customer): decisions of the run already in the log are skipped.

    Args:
        store: the audit store.
        rated: the judged batch ratings (`management.portfolio.judge_scores`).
        tables: the raw tables they were rated from (digested per customer).
        run: the run.
        rules: the settings the ratings were judged with.
        chunk_size: customers per transaction.
        progress: optional callback ``(customers done, total)``.

    Raises:
        BatchRecordError: a column missing, or ``chunk_size`` < 1.
        AuditUnavailableError: if a chunk cannot be committed (the chunks before it stay
            written; a re-run writes the rest).
    """
    if chunk_size < 1:
        raise BatchRecordError(f"chunk_size must be >= 1, got {chunk_size}")
    segments: dict[str, dict[str, str]] = {}
    customers = tables.customers
    if {"industry", "region", "size_class"} <= set(customers.columns):
        seg = customers[["customer_id", "industry", "region", "size_class"]].astype(str)
        segments = {
            r[0]: {"industry": r[1], "region": r[2], "size_class": r[3]}
            for r in seg.itertuples(index=False)
        }
    total, written = len(rated), 0
    todo: list[pd.DataFrame] = []
    for start in range(0, total, chunk_size):  # what earlier calls of the run wrote: skipped
        chunk = rated.iloc[start : start + chunk_size]
        wanted = [batch_decision_id(run.run_id, str(c)) for c in chunk["customer_id"]]
        done = store.existing_decision_ids(wanted)
        if len(done) < len(wanted):
            todo.append(chunk[[d not in done for d in wanted]])
    skipped = total - sum(len(chunk) for chunk in todo)
    if progress is not None and skipped:
        progress(skipped, total)
    chunks = [chunk["customer_id"].astype(str).tolist() for chunk in todo]
    digests = iter_record_digests(dict(tables.items()), chunks) if todo else iter(())
    processed = skipped
    for chunk, reads in zip(todo, digests, strict=True):
        written += _append(store, batch_records(chunk, run, rules, reads, segments))
        processed += len(chunk)
        if progress is not None:
            progress(processed, total)
    return RecordedBatch(run.run_id, total, written, total - written)


def _append(store: AuditStore, records: list[DecisionRecord]) -> int:
    """Append ``records``; those a concurrent writer of the same run committed are skipped."""
    for _ in range(3):
        try:
            return len(store.append_many(records))
        except AuditDuplicateDecisionError as error:
            taken = set(error.decision_ids)
            records = [r for r in records if r.decision_id not in taken]
            if not records:
                return 0
    return len(store.append_many(records))


def record_scores(
    store: AuditStore,
    rated: pd.DataFrame,
    tables: RawTables,
    rules: RatingRules,
    *,
    as_of: date,
    source: str,
    lang: str = "en",
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> RecordedBatch:
    """Record the ratings of ``riskgrade score`` (run id from date, bundle, source, language).

    Args:
        store: the audit store.
        rated: `management.portfolio.judge_scores` of ``tables`` at ``as_of``.
        tables: the raw tables as known at ``as_of``.
        rules: the settings the ratings were judged with.
        as_of: the rating date.
        source: the raw source's label.
        lang: the language of the reason texts.
        chunk_size: customers per transaction.
        progress: optional callback ``(customers done, total)``.

    Raises:
        BatchRecordError: as `record_batch`; also for ratings of several bundles.
        AuditUnavailableError: if a chunk cannot be committed.
    """
    bundles = sorted(set(rated["bundle_hash"].astype(str))) if len(rated) else [""]
    if len(bundles) > 1:
        raise BatchRecordError(f"ratings of {len(bundles)} bundles in one run: {bundles}")
    run = BatchRun(score_run_id(as_of, bundles[0], source, lang), "score", as_of, source, lang)
    return record_batch(store, rated, tables, run, rules, chunk_size=chunk_size, progress=progress)
