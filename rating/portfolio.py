"""Rating a whole portfolio: features chunk by chunk, one ``pred_contrib`` pass per chunk.

This is the batch scoring path shared by the service's batch endpoint (``serving.batch``) and
by monitoring (which may not import serving). Features come from the same
``features.catalog.compute_features_pl`` definitions the service uses for single requests, one
chunk of customers at a time, so the feature and SHAP matrices of a chunk stay bounded.

``iter_rated_chunks`` yields chunks (bounded memory, for callers that only keep a summary);
``rate_portfolio`` keeps everything, including the feature matrix and the full calibrated SHAP
contribution vector of every customer, which migration explanations and drift need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from features.catalog import FEATURE_SPEC, compute_features_pl
from features.errors import RiskgradeError
from features.groups.common import FeatureFrames, to_frames
from features.io import RawTables
from features.spec import FeatureGroup
from rating.bundle import Bundle
from rating.compat import check_compatible
from rating.model import RatingModel, ScoreResult
from rating.output import POLICY_PREFIX, SCORE_COLUMN_NAMES
from rating.policy import CreditPolicy, DefaultStatus, default_status
from rating.reasons import MAX_REASONS

Progress = Callable[[int, int], None]
"""Called with (customers done, customers total) after each chunk."""

_TABLES = ("customers", "financial_statements", "credit_facilities", "repayments", "transactions")


class PortfolioError(RiskgradeError, ValueError):
    """Bad portfolio-rating input (a chunk size below 1)."""


def as_model(bundle: Bundle | RatingModel | Path | str) -> RatingModel:
    """A rating model from a loaded bundle, a model, or a bundle folder (verified on load)."""
    if isinstance(bundle, RatingModel):
        return bundle
    if isinstance(bundle, Bundle):
        return RatingModel(bundle)
    return RatingModel.load(bundle)


def check_model_features(model: RatingModel) -> None:
    """Check the feature code computes every feature the model needs.

    Raises:
        ModelIncompatibleError: naming the features the catalog lacks.
    """
    check_compatible(model.spec, f"bundle {model.bundle.bundle_hash[:12]}")


@dataclass(frozen=True)
class RatedChunk:
    """One chunk of rated customers, row-aligned."""

    customer_ids: list[str]
    features: np.ndarray
    """``(n, n_features)`` model input in spec order (NaN = missing, categoricals as codes)."""
    result: ScoreResult


def _split_frames(frames: FeatureFrames, ids: list[str], chunk_size: int) -> list[FeatureFrames]:
    """Split every frame by customer chunk in one pass per table."""
    chunk_of = pl.DataFrame(
        {"customer_id": ids, "_chunk": [i // chunk_size for i in range(len(ids))]},
        schema={"customer_id": pl.String(), "_chunk": pl.Int64()},
    )
    n_chunks = (len(ids) + chunk_size - 1) // chunk_size
    parts: dict[str, dict[int, pl.DataFrame]] = {}
    for name in _TABLES:
        frame: pl.DataFrame = getattr(frames, name)
        tagged = frame.join(chunk_of, on="customer_id", how="inner")
        split = tagged.partition_by("_chunk", as_dict=True, include_key=False)
        empty = frame.clear()
        parts[name] = {k: split.get((k,), empty) for k in range(n_chunks)}
    return [FeatureFrames(**{name: parts[name][k] for name in parts}) for k in range(n_chunks)]


def portfolio_ids(raw: RawTables | FeatureFrames, as_of: date) -> list[str]:
    """Ids of the customers onboarded on or before ``as_of``, sorted."""
    return (
        to_frames(raw)
        .customers.filter(pl.col("onboarding_date") <= as_of)
        .get_column("customer_id")
        .sort()
        .to_list()
    )


def default_statuses(defaults: pd.DataFrame, as_of: date) -> dict[str, DefaultStatus]:
    """Customers in default at ``as_of`` and their status, from a ``defaults`` table.

    Each customer's records go through `rating.policy.default_status`, the rule the scoring
    API applies to the defaults of a request.
    """
    records: dict[str, list[tuple[date, str]]] = {}
    days = pd.to_datetime(defaults["default_date"]).dt.date
    for cid, day, kind in zip(defaults["customer_id"], days, defaults["default_type"], strict=True):
        records.setdefault(str(cid), []).append((day, str(kind)))
    statuses = {cid: default_status(rows, as_of) for cid, rows in records.items()}
    return {cid: status for cid, status in statuses.items() if status is not None}


def iter_rated_chunks(
    raw: RawTables | FeatureFrames,
    as_of: date,
    model: RatingModel,
    chunk_size: int = 10_000,
    progress: Progress | None = None,
    *,
    num_threads: int | None = None,
) -> Iterator[RatedChunk]:
    """Rate every customer onboarded by ``as_of``, yielding one chunk at a time (sorted by id).

    Customers in default at ``as_of`` (from ``raw.defaults``; polars frames carry none) get
    the default grade and the restricted tier (`RatingModel.score`).

    Args:
        raw: the raw tables (validated upstream) or their polars frames.
        as_of: rating date; only records known then are used.
        model: the rating model.
        chunk_size: customers per chunk (bounds the feature and SHAP matrices).
        progress: optional callback ``(done, total)`` after each chunk.
        num_threads: LightGBM threads of the SHAP pass (default: the model's).

    Raises:
        PortfolioError: if ``chunk_size`` < 1.
        ModelIncompatibleError: if the model needs a feature the feature code lacks.
    """
    if chunk_size < 1:
        raise PortfolioError(f"chunk_size must be >= 1, got {chunk_size}")
    check_model_features(model)
    frames = to_frames(raw)
    ids = portfolio_ids(frames, as_of)
    in_default = default_statuses(raw.defaults, as_of) if isinstance(raw, RawTables) else {}
    done = 0
    for chunk in _split_frames(frames, ids, chunk_size):
        rated = rate_features(
            compute_features_pl(chunk, as_of), model, in_default, num_threads=num_threads
        )
        done += len(rated.result)
        yield rated
        if progress is not None:
            progress(done, len(ids))


def rate_features(
    features: pl.DataFrame,
    model: RatingModel,
    defaults: Mapping[str, DefaultStatus] | None = None,
    *,
    num_threads: int | None = None,
) -> RatedChunk:
    """Rate customers from their features (``customer_id`` and the catalog's features).

    The step every batch engine shares after the features: the polars chunks here, and each
    Spark partition of ``serving.spark_batch``. ``defaults`` holds the customers in default at
    the rating date (`default_statuses`); they get the default grade (`RatingModel.score`).
    ``num_threads`` sets the LightGBM threads (default: the model's; values do not depend on it).
    """
    features = features.fill_null(float("nan"))
    x = np.ascontiguousarray(features.select(model.spec.names).to_numpy(), dtype=np.float64)
    flag_names = [f for f in model.policy.flag_names if f in FEATURE_SPEC.names]
    flags = {f: features.get_column(f).to_numpy().astype(np.float64) for f in flag_names}
    ids = features.get_column("customer_id").to_list()
    statuses = defaults or {}
    result = model.score(x, flags, defaults=[statuses.get(c) for c in ids], num_threads=num_threads)
    return RatedChunk(ids, x, result)


def chunk_table(
    chunk: RatedChunk, as_of: date, model: RatingModel, lang: str = "en"
) -> pd.DataFrame:
    """The per-customer table of a rated chunk (the batch scoring output format).

    Columns: `rating.output.SCORE_COLUMNS`, in that order; reason texts in ``lang`` (``en``
    or ``zh``). Reasons are the ones the scoring API gives: hard rules first, then the
    default status, then the top adverse features.
    """
    result = chunk.result
    text = "text_zh" if lang == "zh" else "text_en"
    tiers = [str(t) for t in result.tier]
    by_tier = {t: model.policy_of(t) for t in set(tiers)}
    policies = [by_tier[t] for t in tiers]
    columns: dict[str, object] = {
        "customer_id": chunk.customer_ids,
        "as_of": pd.Timestamp(as_of),
        "pd": result.pd,
        "score": result.points.astype(np.int64),
        "grade": result.grade.astype(str),
        "model_tier": [str(t) for t in result.model_tier],
        "tier": tiers,
        "in_default": result.in_default,
        "default_date": pd.to_datetime(
            [None if d is None else d.default_date for d in result.defaults]
        ),
        "default_type": [None if d is None else d.default_type for d in result.defaults],
        "hard_rules": [";".join(h.code for h in hits) for hits in result.hard_rules],
    }
    for k in range(MAX_REASONS):
        picked = [rs[k] if len(rs) > k else None for rs in result.reasons]
        columns[f"reason_{k + 1}"] = [None if r is None else r.code for r in picked]
        columns[f"reason_{k + 1}_text"] = [None if r is None else getattr(r, text) for r in picked]
        columns[f"reason_{k + 1}_contribution"] = np.array(
            [math.nan if r is None or r.contribution is None else r.contribution for r in picked],
            dtype=np.float64,
        )
    for group, values in result.group_contributions.items():
        columns[f"group_{group}"] = values
    for name in CreditPolicy.model_fields:
        columns[POLICY_PREFIX + name] = [getattr(p, name) for p in policies]
    columns["lang"] = lang
    columns["model_version"] = model.bundle.metadata.version
    columns["bundle_hash"] = model.bundle.bundle_hash
    columns["policy_version"] = model.policy_version
    frame = pd.DataFrame(columns)
    return frame[list(SCORE_COLUMN_NAMES)]


def _concat_results(results: list[ScoreResult], n_features: int) -> ScoreResult:
    def cat(name: str, empty: np.ndarray) -> np.ndarray:
        arrays = [getattr(r, name) for r in results]
        return np.concatenate(arrays) if arrays else empty

    floats = np.zeros(0, dtype=np.float64)
    objects = np.zeros(0, dtype=object)
    return ScoreResult(
        pd=cat("pd", floats),
        log_odds=cat("log_odds", floats),
        points=cat("points", floats),
        grade=cat("grade", objects),
        grade_index=cat("grade_index", np.zeros(0, dtype=np.int64)),
        model_tier=cat("model_tier", objects),
        tier=cat("tier", objects),
        contributions=cat("contributions", np.zeros((0, n_features))),
        base=cat("base", floats),
        group_contributions={
            g.value: (
                np.concatenate([r.group_contributions[g.value] for r in results])
                if results
                else floats
            )
            for g in FeatureGroup
        },
        hard_rules=[hits for r in results for hits in r.hard_rules],
        reasons=[rs for r in results for rs in r.reasons],
        defaults=[d for r in results for d in r.defaults],
    )


@dataclass(frozen=True)
class PortfolioRating:
    """A whole portfolio rated at one date, with features and full SHAP vectors."""

    as_of: date
    customer_ids: list[str]
    """Sorted customer ids, row order of every array."""
    features: np.ndarray
    """``(n, n_features)`` model input in spec order."""
    result: ScoreResult
    """PD, grade, tiers, calibrated contributions, base, hard rules and reasons per row."""
    model: RatingModel

    def __len__(self) -> int:
        return len(self.customer_ids)

    @property
    def feature_names(self) -> list[str]:
        """Feature names in the column order of ``features`` and ``result.contributions``."""
        return self.model.spec.names

    @property
    def model_version(self) -> str:
        """Version of the bundle that rated the portfolio."""
        return self.model.bundle.metadata.version

    @property
    def bundle_hash(self) -> str:
        """SHA-256 of the bundle manifest."""
        return self.model.bundle.bundle_hash

    def table(self, lang: str = "en") -> pd.DataFrame:
        """Per-customer table in the batch scoring format (see `chunk_table`)."""
        chunk = RatedChunk(self.customer_ids, self.features, self.result)
        return chunk_table(chunk, self.as_of, self.model, lang)


def rate_portfolio(
    raw: RawTables | FeatureFrames,
    as_of: date,
    bundle: Bundle | RatingModel | Path | str,
    chunk_size: int = 10_000,
    progress: Progress | None = None,
) -> PortfolioRating:
    """Rate every customer onboarded by ``as_of`` and keep features and SHAP vectors.

    Args:
        raw: the raw tables (validated upstream) or their polars frames.
        as_of: rating date; only records known then are used.
        bundle: a loaded bundle, a model, or a bundle folder (verified on load).
        chunk_size: customers per chunk (bounds the work matrices, not the result).
        progress: optional callback ``(done, total)``.

    Returns:
        The rating of every customer, sorted by id; ``result.contributions`` holds each
        customer's calibrated SHAP vector (its sum plus ``result.base`` is the log-odds).

    Raises:
        PortfolioError: if ``chunk_size`` < 1.
        ModelIncompatibleError: if the model needs a feature the feature code lacks.
    """
    model = as_model(bundle)
    ids: list[str] = []
    features: list[np.ndarray] = []
    results: list[ScoreResult] = []
    for chunk in iter_rated_chunks(raw, as_of, model, chunk_size, progress):
        ids.extend(chunk.customer_ids)
        features.append(chunk.features)
        results.append(chunk.result)
    n_features = len(model.spec.features)
    matrix = np.concatenate(features) if features else np.zeros((0, n_features))
    return PortfolioRating(
        as_of=as_of,
        customer_ids=ids,
        features=matrix,
        result=_concat_results(results, n_features),
        model=model,
    )
