"""Batch scoring of a whole portfolio through the service's code, and /score request bodies.

``score_portfolio`` computes features with the same ``compute_features_pl`` definitions the
service uses, one chunk of customers at a time (feature and SHAP matrices stay bounded), and
scores each chunk with one ``pred_contrib`` pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from features.catalog import FEATURE_SPEC, compute_features_pl
from features.groups.common import FeatureFrames, to_frames
from features.io import RawTables
from rating.bundle import Bundle
from rating.model import RatingModel
from rating.reasons import MAX_REASONS
from serving.engine import Engine

Progress = Callable[[int, int], None]
"""Called with (customers done, customers total) after each chunk."""


class BatchError(ValueError):
    """Bad batch-scoring input."""


def _model(bundle: Bundle | RatingModel | Path | str) -> RatingModel:
    if isinstance(bundle, RatingModel):
        return bundle
    if isinstance(bundle, Bundle):
        return RatingModel(bundle)
    return RatingModel.load(bundle)


def _chunks(frames: FeatureFrames, ids: list[str], chunk_size: int) -> list[FeatureFrames]:
    """Split every frame by customer chunk in one pass per table."""
    chunk_of = pl.DataFrame(
        {"customer_id": ids, "_chunk": [i // chunk_size for i in range(len(ids))]},
        schema={"customer_id": pl.String(), "_chunk": pl.Int64()},
    )
    n_chunks = (len(ids) + chunk_size - 1) // chunk_size
    parts: dict[str, dict[int, pl.DataFrame]] = {}
    for name in (
        "customers",
        "financial_statements",
        "credit_facilities",
        "repayments",
        "transactions",
    ):
        frame: pl.DataFrame = getattr(frames, name)
        tagged = frame.join(chunk_of, on="customer_id", how="inner")
        split = tagged.partition_by("_chunk", as_dict=True, include_key=False)
        empty = frame.clear()
        parts[name] = {k: split.get((k,), empty) for k in range(n_chunks)}
    return [FeatureFrames(**{name: parts[name][k] for name in parts}) for k in range(n_chunks)]


def score_portfolio(
    raw: RawTables | FeatureFrames,
    as_of: date,
    bundle: Bundle | RatingModel | Path | str,
    chunk_size: int = 10_000,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Rate every customer onboarded by ``as_of``.

    Args:
        raw: the raw tables (validated upstream).
        as_of: rating date; only records known then are used.
        bundle: a loaded bundle, a model, or a bundle folder (verified on load).
        chunk_size: customers per chunk (bounds the feature and SHAP matrices).
        progress: optional callback ``(done, total)``.

    Returns:
        One row per customer sorted by id: ``customer_id, as_of, pd, score, grade,
        model_tier, tier, hard_rules`` (codes, ``;``-joined), ``reason_1..4`` codes,
        ``reason_1..4_contribution``, ``group_<name>`` contributions, ``model_version``,
        ``bundle_hash``.

    Raises:
        BatchError: if ``chunk_size`` < 1.
    """
    if chunk_size < 1:
        raise BatchError(f"chunk_size must be >= 1, got {chunk_size}")
    engine = Engine(_model(bundle))
    model = engine.model
    frames = to_frames(raw)
    ids = (
        frames.customers.filter(pl.col("onboarding_date") <= as_of)
        .get_column("customer_id")
        .sort()
        .to_list()
    )
    columns = model.spec.names
    flag_names = [f for f in model.policy.flag_names if f in FEATURE_SPEC.names]
    out: list[pd.DataFrame] = []
    done = 0
    for chunk in _chunks(frames, ids, chunk_size):
        features = compute_features_pl(chunk, as_of).fill_null(float("nan"))
        x = np.ascontiguousarray(features.select(columns).to_numpy(), dtype=np.float64)
        flags = {f: features.get_column(f).to_numpy().astype(np.float64) for f in flag_names}
        result = model.score(x, flags)
        frame = pd.DataFrame(
            {
                "customer_id": features.get_column("customer_id").to_list(),
                "as_of": pd.Timestamp(as_of),
                "pd": result.pd,
                "score": result.points.astype(np.int64),
                "grade": result.grade.astype(str),
                "model_tier": [str(t) for t in result.model_tier],
                "tier": [str(t) for t in result.tier],
                "hard_rules": [";".join(h.code for h in hits) for hits in result.hard_rules],
            }
        )
        for k in range(MAX_REASONS):
            adverse = [[r for r in rs if r.group != "hard_rule"] for rs in result.reasons]
            frame[f"reason_{k + 1}"] = [rs[k].code if len(rs) > k else None for rs in adverse]
            frame[f"reason_{k + 1}_contribution"] = [
                rs[k].contribution if len(rs) > k else math.nan for rs in adverse
            ]
        for group, values in result.group_contributions.items():
            frame[f"group_{group}"] = values
        out.append(frame)
        done += len(frame)
        if progress is not None:
            progress(done, len(ids))
    table = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    table["model_version"] = engine.model_version
    table["bundle_hash"] = engine.bundle_hash
    return table


def _iso(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return None
    return pd.Timestamp(value).date().isoformat()


def request_example(
    raw: RawTables, customer_id: str, as_of: date, *, lang: str = "en"
) -> dict[str, Any]:
    """A valid /score body for one customer of ``raw``, with the records known at ``as_of``.

    Payments made after ``as_of`` are shown unpaid (as they were then); later statements,
    facilities and transactions are left out.

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
    }
