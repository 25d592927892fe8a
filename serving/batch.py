"""Batch scoring of a whole portfolio through the service's code, and /score request bodies.

``score_portfolio`` is a thin wrapper over ``rating.portfolio`` (the batch scoring path that
monitoring shares): features with the same ``compute_features_pl`` definitions the service
uses, one chunk of customers at a time (feature and SHAP matrices stay bounded), each chunk
scored with one ``pred_contrib`` pass; only the per-customer table is kept.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from features.asof import AsOfCut
from features.chunks import iter_known_chunks, merge_cuts
from features.errors import RiskgradeError
from features.groups.common import FeatureFrames
from features.io import ChunkedFileWriter, RawTables
from features.source import RawSource
from management.judgement import RatingRules
from management.measures import active_measures
from management.portfolio import judge_scores, judgement_events
from rating.bundle import Bundle
from rating.judgement import JudgementConfig
from rating.lifecycle import LifecycleConfig
from rating.model import RatingModel
from rating.output import SCORE_COLUMN_NAMES, SCORE_COLUMNS, judged_column_names
from rating.portfolio import Progress, as_model, chunk_table, iter_rated_chunks
from serving.engine import Engine

if TYPE_CHECKING:
    from audit import AuditStore

__all__ = [
    "BatchError",
    "PortfolioScores",
    "Progress",
    "request_example",
    "score_portfolio",
    "score_to_file",
]


class BatchError(RiskgradeError, ValueError):
    """Bad batch-scoring input."""


def score_portfolio(
    raw: RawTables | FeatureFrames,
    as_of: date,
    bundle: Bundle | RatingModel | Path | str,
    chunk_size: int = 10_000,
    progress: Progress | None = None,
    *,
    lang: str = "en",
    num_threads: int | None = None,
) -> pd.DataFrame:
    """Rate every customer onboarded by ``as_of``: what ``/score`` answers, one row each.

    Args:
        raw: the raw tables (validated upstream).
        as_of: rating date; only records known then are used.
        bundle: a loaded bundle, a model, or a bundle folder (verified on load).
        chunk_size: customers per chunk (bounds the feature and SHAP matrices).
        progress: optional callback ``(done, total)``.
        lang: language of the reason texts, ``en`` or ``zh``.
        num_threads: LightGBM threads of the SHAP pass (default: the model's, one).

    Returns:
        One row per customer sorted by id, columns `rating.output.SCORE_COLUMNS`: PD,
        grade and tiers (customers in default at ``as_of`` get the default grade and the
        restricted tier), the tier's policy, reasons with texts, model version and hash.

    Raises:
        BatchError: if ``chunk_size`` < 1 or ``lang`` is not ``en``/``zh``.
        ModelIncompatibleError: if the bundle needs features the feature code lacks.
    """
    if chunk_size < 1:
        raise BatchError(f"chunk_size must be >= 1, got {chunk_size}")
    if lang not in ("en", "zh"):
        raise BatchError(f"lang must be en or zh, got {lang!r}")
    engine = Engine(as_model(bundle))  # checks the bundle's features against the catalog
    model = engine.model
    out = [
        chunk_table(chunk, as_of, model, lang)
        for chunk in iter_rated_chunks(
            raw, as_of, model, chunk_size, progress, num_threads=num_threads
        )
    ]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=SCORE_COLUMN_NAMES)


TIER_ORDER = ("low", "medium", "high", "restricted")


@dataclass(frozen=True)
class PortfolioScores:
    """What `score_to_file` wrote: rows, the count by tier, and what the as-of read left out."""

    rows: int
    by_tier: pd.DataFrame
    """Index ``low``..``restricted``; columns ``customers`` and ``in_default``."""
    cut: AsOfCut


_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.large_string(),
    "date": pa.timestamp("s"),  # as pandas builds them; Parquet stores them in ms
    "float64": pa.float64(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
}


def judged_schema() -> pa.Schema:
    """Arrow types of the judged scoring output (a column all null in a chunk keeps its type)."""
    from rating.output import JUDGEMENT_COLUMNS

    types = {c.name: _ARROW_TYPES[c.dtype] for c in (*SCORE_COLUMNS, *JUDGEMENT_COLUMNS)}
    return pa.schema([(name, types[name]) for name in judged_column_names()])


def score_to_file(
    raw: RawSource | Path | str,
    as_of: date,
    bundle: Bundle | RatingModel | Path | str,
    out: Path,
    *,
    store: AuditStore | None = None,
    judgement: JudgementConfig,
    lifecycle: LifecycleConfig | None = None,
    chunk_size: int = 10_000,
    lang: str = "en",
    progress: Progress | None = None,
    on_chunk: Callable[[pd.DataFrame, RawTables, RatingRules], None] | None = None,
) -> PortfolioScores:
    """Rate a raw folder or database at ``as_of`` into ``out``, one customer range at a time.

    Each range is read as known at ``as_of`` and validated (`features.chunks`), scored
    (`score_portfolio`), judged with data sufficiency and the people's judgement of ``store``
    (`management.portfolio.judge_scores`; the store is read once) and appended to ``out``
    (Parquet, or CSV by suffix), which appears only when complete. Memory follows
    ``chunk_size``, not the portfolio; the rows equal those of the whole portfolio scored and
    judged at once. The SHAP pass uses every core the process may run on. ``on_chunk`` gets
    each judged range, its tables and the rules before the range is written (``score
    --record`` records the ratings in the audit log there).

    Raises:
        BatchError: if ``chunk_size`` < 1 or ``lang`` is not ``en``/``zh``.
        RawValidationError: listing every problem of the records known at ``as_of`` (nothing
            is written).
        ModelIncompatibleError: if the bundle needs features the feature code lacks.
    """
    if chunk_size < 1:
        raise BatchError(f"chunk_size must be >= 1, got {chunk_size}")
    if lang not in ("en", "zh"):
        raise BatchError(f"lang must be en or zh, got {lang!r}")
    model = Engine(as_model(bundle)).model
    rules = RatingRules(model.scale, model.policy, judgement, lifecycle or LifecycleConfig())
    events = judgement_events(store) if store is not None else {}
    measures = active_measures(store, as_of) if store is not None else []
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cuts: list[AsOfCut] = []
    counts = pd.DataFrame(0, index=list(TIER_ORDER), columns=["customers", "in_default"])
    done = 0
    with ChunkedFileWriter(out, judged_schema()) as writer:
        for chunk in iter_known_chunks(raw, as_of, chunk_size):
            cuts.append(chunk.cut)
            rated = score_portfolio(
                chunk.tables, as_of, model, chunk_size=chunk_size, lang=lang, num_threads=threads
            )
            rated = judge_scores(
                rated, chunk.tables, store, rules, as_of, events=events, measures=measures
            )
            if on_chunk is not None:
                on_chunk(rated, chunk.tables, rules)
            writer.write(rated)
            tiers = rated.groupby("tier").agg(
                customers=("customer_id", "size"), in_default=("in_default", "sum")
            )
            counts = counts.add(tiers.reindex(TIER_ORDER, fill_value=0), fill_value=0)
            done += len(rated)
            if progress is not None:
                progress(done, done)
        rows = writer.rows
    return PortfolioScores(rows, counts.astype("int64"), merge_cuts(cuts, as_of))


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def request_example(
    raw: RawTables, customer_id: str, as_of: date, *, lang: str = "en"
) -> dict[str, Any]:
    """A valid /score body for one customer of ``raw``, with the records known at ``as_of``.

    Payments made after ``as_of`` are shown unpaid (as they were then); later statements,
    facilities, transactions and defaults are left out.

    Raises:
        BatchError: if the customer is unknown or onboarded after ``as_of``.
    """
    customers = raw.customers[raw.customers["customer_id"] == customer_id]
    if customers.empty:
        raise BatchError(f"customer {customer_id!r} is not in the raw tables")
    c = customers.iloc[0]
    if pd.Timestamp(c["onboarding_date"]).date() > as_of:
        raise BatchError(f"customer {customer_id!r} was onboarded after {as_of}")
    end = pd.Timestamp(as_of)
    statements = raw.financial_statements
    statements = statements[
        (statements["customer_id"] == customer_id) & (statements["published_date"] <= end)
    ]
    facilities = raw.credit_facilities
    facilities = facilities[
        (facilities["customer_id"] == customer_id) & (facilities["opened"] <= end)
    ]
    repayments = raw.repayments[raw.repayments["customer_id"] == customer_id]
    transactions = raw.transactions
    transactions = transactions[
        (transactions["customer_id"] == customer_id)
        & (transactions["ts"] < end + pd.Timedelta(days=1))
    ]
    defaults = raw.defaults
    defaults = defaults[
        (defaults["customer_id"] == customer_id) & (defaults["default_date"] <= end)
    ]
    amounts = [
        "total_assets", "total_liabilities", "current_assets", "current_liabilities", "cash",
        "revenue", "operating_costs", "net_income", "operating_cash_flow", "interest_expense",
    ]  # fmt: skip

    def instalments(facility_id: str) -> list[dict[str, Any]]:
        rows = repayments[repayments["facility_id"] == facility_id].sort_values("instalment_no")
        out = []
        for r in rows.itertuples(index=False):
            paid = r.paid_date if pd.notna(r.paid_date) and r.paid_date <= end else None
            out.append(
                {
                    "instalment_no": int(r.instalment_no),
                    "due_date": _iso(r.due_date),
                    "amount_due": float(r.amount_due),
                    "paid_date": _iso(paid),
                    "amount_paid": float(r.amount_paid) if paid is not None else 0.0,
                }
            )
        return out

    return {
        "as_of": as_of.isoformat(),
        "lang": lang,
        "customer": {
            "customer_id": customer_id,
            "industry": str(c["industry"]),
            "region": str(c["region"]),
            "size_class": str(c["size_class"]),
            "legal_form": str(c["legal_form"]),
            "founded_date": _iso(c["founded_date"]),
            "onboarding_date": _iso(c["onboarding_date"]),
            "sanctions_hit": bool(c["sanctions_hit"]),
            "legal_enforcement": bool(c["legal_enforcement"]),
            "fraud": bool(c["fraud"]),
        },
        "statements": [
            {
                "period_end": _iso(s["period_end"]),
                "published_date": _iso(s["published_date"]),
                "period_months": int(s["period_months"]),
                "audited": bool(s["audited"]),
                **{name: float(s[name]) for name in amounts},
            }
            for _, s in statements.sort_values("period_end").iterrows()
        ],
        "facilities": [
            {
                "facility_id": str(f["facility_id"]),
                "facility_type": str(f["facility_type"]),
                "currency": str(f["currency"]),
                "opened": _iso(f["opened"]),
                "maturity_date": _iso(f["maturity_date"]),
                "limit": float(f["limit"]),
                "outstanding": float(f["outstanding"]),
                "instalments": instalments(str(f["facility_id"])),
            }
            for _, f in facilities.sort_values("facility_id").iterrows()
        ],
        "transactions": [
            {
                "txn_id": str(t.txn_id),
                "ts": pd.Timestamp(t.ts).isoformat(),
                "amount": float(t.amount),
                "direction": str(t.direction),
                "counterparty_id": str(t.counterparty_id),
                "channel": str(t.channel),
            }
            for t in transactions.sort_values("ts").itertuples(index=False)
        ],
        "defaults": [
            {"default_date": _iso(d.default_date), "default_type": str(d.default_type)}
            for d in defaults.sort_values("default_date").itertuples(index=False)
        ],
    }
