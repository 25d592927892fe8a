"""A monitoring run: re-rate the portfolio, store it, compare with the previous run.

``run_monitoring`` rates every customer through the batch scoring path
(`rating.portfolio.rate_portfolio`), marks customers in default at ``as_of`` with the default
grade (a status, not a PD band) in the restricted tier, stores the run with every customer's
SHAP vector, and computes: migration matrices of tiers and grades against the previous run,
every move explained by the SHAP difference, drift of the score and every feature against the
bundle's reference (performing customers only, as in training), outcomes of runs old enough,
the covenant checks of the contract terms in force, the review schedule from the recorded
reviews, the early-warning list (one row per customer) and the counts by segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.asof import AsOfCut
from features.chunks import iter_known_chunks, merge_cuts
from features.covenants import COVENANT_FEATURES, CovenantConfig
from features.groups import financial
from features.groups.common import to_frames
from features.io import RawTables
from features.judgement import JudgementTables
from features.records import RecordTables, cut_records, empty_records
from features.source import RawSource
from features.spec import FeatureSpec
from monitoring.config import DEFAULT_STORE, MonitoringConfig, MonitoringError
from monitoring.covenants import CHECK_COLUMNS, check_covenants
from monitoring.drift import DRIFT_COLUMNS, DriftTally, has_reference
from monitoring.judgement import JudgementFindings, monitor_judgement
from monitoring.migration import TIER_LABELS, MigrationMatrix, explain_moves, migration_matrix
from monitoring.outcomes import AUC_COLUMNS, GRADE_OUTCOME_COLUMNS, grade_outcomes, is_due
from monitoring.segments import segment_table
from monitoring.store import RATING_COLUMNS, MonitoringStore, RunInfo, StoredRun
from monitoring.warnings import early_warnings, no_measures, review_schedule
from rating.bundle import Bundle
from rating.judgement import JudgementConfig
from rating.model import RatingModel
from rating.policy import RatingPolicy, Tier
from rating.portfolio import PortfolioRating, Progress, as_model, rate_portfolio
from rating.scale import MasterScale
from rating.sufficiency import data_sufficiency


@dataclass(frozen=True)
class MonitoringRun:
    """Everything one monitoring run found (see `run_monitoring`)."""

    info: RunInfo
    previous: RunInfo | None
    ratings: pd.DataFrame
    """Per-customer ratings of this run (`monitoring.store.RATING_COLUMNS`)."""
    tier_matrix: MigrationMatrix | None
    grade_matrix: MigrationMatrix | None
    moves: pd.DataFrame
    """Every downgrade and upgrade with its explanation (`monitoring.migration.MOVE_COLUMNS`)."""
    drift: pd.DataFrame
    """PSI rows, score first (`monitoring.drift.DRIFT_COLUMNS`); empty without a reference."""
    previous_drift: pd.DataFrame | None
    grade_outcomes: pd.DataFrame
    """Realised default rate per grade of every run old enough, against the PD band."""
    auc_history: pd.DataFrame
    """AUC per back-tested run, oldest first."""
    warnings: pd.DataFrame
    schedule: pd.DataFrame
    scale: MasterScale
    policy: RatingPolicy
    spec: FeatureSpec
    config: MonitoringConfig
    notes: list[str] = field(default_factory=list)
    score_edges: list[float] = field(default_factory=list)
    """Inner PD bin edges of the reference (for the score distribution chart)."""
    insufficient_data: int = 0
    """Performing customers below the data-sufficiency rule at ``as_of``."""
    judgement: JudgementFindings | None = None
    """Monitoring of human judgement (when the raw folder holds assessments or overrides)."""
    covenants: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHECK_COLUMNS))
    """Every covenant in force checked at ``as_of`` (`monitoring.covenants.CHECK_COLUMNS`)."""
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Counts by industry, region and size class (`monitoring.segments.SEGMENT_COLUMNS`)."""

    @property
    def run_id(self) -> str:
        """This run's id."""
        return self.info.run_id

    @property
    def downgrades(self) -> int:
        """Customers whose (tier, grade) worsened since the previous run."""
        return int((self.moves["direction"] == "downgrade").sum()) if len(self.moves) else 0

    @property
    def upgrades(self) -> int:
        """Customers whose (tier, grade) improved since the previous run."""
        return int((self.moves["direction"] == "upgrade").sum()) if len(self.moves) else 0

    def flagged_drift(self) -> pd.DataFrame:
        """Drift rows flagged ``watch`` or ``alert``."""
        if self.drift.empty:
            return self.drift
        return self.drift[self.drift["flag"].isin(["watch", "alert"])]


def _reason_texts(rating: PortfolioRating, lang: str) -> list[str]:
    key = "text_zh" if lang == "zh" else "text_en"
    return ["; ".join(getattr(r, key) for r in rs) for rs in rating.result.reasons]


def ratings_frame(
    rating: PortfolioRating, raw: RawTables, lang: str = "en"
) -> tuple[pd.DataFrame, pd.Series]:
    """The run's per-customer table and each customer's reason text.

    Customers in default at the rating date carry the default grade and the restricted tier
    (given by `RatingModel.score`, as in batch scoring and the API); their model PD and SHAP
    vector are kept.
    """
    result = rating.result
    ids = pd.Index(rating.customer_ids, name="customer_id")
    customers = raw.customers.set_index("customer_id").reindex(ids)
    in_default = result.in_default
    default_dates = [None if d is None else d.default_date for d in result.defaults]
    tier = np.array([str(t) for t in result.tier], dtype=object)
    rank = {t.value: t.rank for t in Tier}
    texts = _reason_texts(rating, lang)
    frame = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "industry": customers["industry"].astype(str).to_numpy(),
            "region": customers["region"].astype(str).to_numpy(),
            "size_class": customers["size_class"].astype(str).to_numpy(),
            "onboarding_date": pd.to_datetime(customers["onboarding_date"]).to_numpy(),
            "in_default": in_default,
            "default_date": pd.to_datetime(default_dates).to_numpy(),
            "pd": result.pd,
            "log_odds": result.log_odds,
            "score": result.points.astype(np.int64),
            "grade": result.grade.astype(str),
            "grade_index": result.grade_index.astype(np.int64),
            "model_tier": [str(t) for t in result.model_tier],
            "tier": tier,
            "tier_rank": [rank[t] for t in tier],
            "hard_rules": [";".join(h.code for h in hits) for hits in result.hard_rules],
            "reasons": [";".join(r.code for r in rs) for rs in result.reasons],
            "base": result.base,
        },
        columns=RATING_COLUMNS,
    )
    return frame, pd.Series(texts, index=ids.to_numpy(), name="reasons")


def _outcomes(
    store: MonitoringStore,
    defaults: pd.DataFrame,
    as_of: date,
    scale: MasterScale,
    config: MonitoringConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    horizon = config.outcomes.horizon_months
    due = [info for info in store.runs_up_to(as_of) if is_due(info.as_of, as_of, horizon)]
    known = defaults[pd.to_datetime(defaults["default_date"]) <= pd.Timestamp(as_of)]
    ratings = store.ratings_of(
        [i.run_id for i in due], ["customer_id", "grade", "pd", "in_default"]
    )
    tables, records = [], []
    for info in due:
        rows = ratings[ratings["run_id"] == info.run_id]
        table, record = grade_outcomes(rows, info.run_id, info.as_of, known, scale, config.outcomes)
        tables.append(table)
        records.append(record)
    by_grade = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=GRADE_OUTCOME_COLUMNS)
    )
    return by_grade, pd.DataFrame(records, columns=AUC_COLUMNS)


@dataclass(frozen=True)
class RatedPortfolio:
    """What a monitoring run keeps of the portfolio: per-customer results, no raw record.

    Built range by range (`rate_parts`): each customer range is rated, then only its
    ratings, SHAP vectors, drift bin counts, data sufficiency and covenant features are kept.
    """

    as_of: date
    ratings: pd.DataFrame
    """`monitoring.store.RATING_COLUMNS`, sorted by customer."""
    texts: pd.Series
    """Each customer's reason text, by customer id."""
    contributions: np.ndarray
    feature_names: list[str]
    drift: DriftTally | None
    """Bin counts of the performing customers; None without a reference."""
    sufficiency: pd.DataFrame
    covenant_features: pd.DataFrame
    """``customer_id`` and `COVENANT_FEATURE_NAMES` at ``as_of``."""
    previous_covenant_features: pd.DataFrame | None
    """The same at the previous run's date (from the records known at ``as_of``)."""
    defaults: pd.DataFrame
    """The ``defaults`` rows (known at ``as_of``)."""
    customers: pd.DataFrame
    """``customer_id``, ``industry``, ``region``, ``size_class`` of every customer."""
    row_counts: dict[str, int]


def _previous_info(
    store: MonitoringStore, as_of: date, previous_run_id: str | None, config: MonitoringConfig
) -> RunInfo | None:
    """The run to compare with (see `run_monitoring`).

    Raises:
        MonitoringError: for an unknown previous run or one dated after ``as_of``.
    """
    if previous_run_id is None and config.auto_previous:
        previous_run_id = store.latest_before(as_of)
    previous_info = store.run_info(previous_run_id) if previous_run_id else None
    if previous_info is not None and previous_info.as_of > as_of:
        raise MonitoringError(
            f"previous run {previous_info.run_id} is dated {previous_info.as_of}, "
            f"after as_of {as_of}"
        )
    return previous_info


def previous_run(
    store_path: Path | str,
    as_of: date,
    previous_run_id: str | None = None,
    config: MonitoringConfig | None = None,
) -> RunInfo | None:
    """The run a monitoring run at ``as_of`` compares with (None for the first run).

    Raises:
        MonitoringError: for an unknown previous run or one dated after ``as_of``.
    """
    config = config or MonitoringConfig()
    return _previous_info(MonitoringStore(store_path), as_of, previous_run_id, config)


_SEGMENTS = ["customer_id", "industry", "region", "size_class"]


def rate_parts(
    parts: Iterable[RawTables],
    as_of: date,
    bundle_dir: Bundle | RatingModel | Path | str,
    config: MonitoringConfig | None = None,
    *,
    previous_as_of: date | None = None,
    judgement_config: JudgementConfig | None = None,
    progress: Progress | None = None,
) -> RatedPortfolio:
    """Rate a portfolio given in customer ranges and keep what a monitoring run needs.

    Every result kept is per customer, so the ranges give what the whole portfolio gives
    (the drift as bin counts summed over the ranges).

    Args:
        parts: the raw tables known at ``as_of`` (validated), one customer range each, in
            customer order (a whole portfolio is one part).
        as_of: rating date.
        bundle_dir: the model bundle (folder, loaded bundle or model).
        config: monitoring settings (chunk size, drift thresholds, language).
        previous_as_of: the previous run's date (its covenant features are computed too).
        judgement_config: the data-sufficiency rule.
        progress: optional callback ``(customers done, customers done)`` after each range.

    Raises:
        ModelIncompatibleError: if the bundle needs features the feature code does not compute.
    """
    config = config or MonitoringConfig()
    judgement_config = judgement_config or JudgementConfig()
    model = as_model(bundle_dir)
    reference = model.bundle.reference
    drift = (
        DriftTally(model.spec.names, model.spec, reference, config.drift)
        if has_reference(reference)
        else None
    )
    kept: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("ratings", "sufficiency", "covenants", "previous", "defaults", "customers")
    }
    texts: list[pd.Series] = []
    contributions: list[np.ndarray] = []
    row_counts: dict[str, int] = {}
    done = 0
    for raw in parts:
        rating = rate_portfolio(raw, as_of, model, config.chunk_size)
        ratings, text = ratings_frame(rating, raw, config.lang)
        performing = ~ratings["in_default"].to_numpy()
        if drift is not None:
            drift.add(rating.features[performing], rating.result.pd[performing])
        kept["ratings"].append(ratings)
        texts.append(text)
        contributions.append(rating.result.contributions)
        kept["sufficiency"].append(
            data_sufficiency(
                ratings["customer_id"],
                raw.financial_statements,
                raw.credit_facilities,
                raw.transactions,
                as_of,
                judgement_config.data_sufficiency,
            )
        )
        kept["covenants"].append(covenant_features(raw, as_of))
        if previous_as_of is not None:
            kept["previous"].append(covenant_features(raw, previous_as_of))
        kept["defaults"].append(raw.defaults)
        kept["customers"].append(raw.customers[_SEGMENTS])
        for table, n in raw.row_counts().items():
            row_counts[table] = row_counts.get(table, 0) + n
        done += len(ratings)
        if progress is not None:
            progress(done, done)

    def joined(name: str) -> pd.DataFrame:
        return pd.concat(kept[name], ignore_index=True)

    n_features = len(model.spec.names)
    return RatedPortfolio(
        as_of=as_of,
        ratings=joined("ratings"),
        texts=pd.concat(texts),
        contributions=np.concatenate(contributions) if contributions else np.zeros((0, n_features)),
        feature_names=list(model.spec.names),
        drift=drift,
        sufficiency=joined("sufficiency"),
        covenant_features=joined("covenants"),
        previous_covenant_features=joined("previous") if previous_as_of is not None else None,
        defaults=joined("defaults"),
        customers=joined("customers"),
        row_counts=row_counts,
    )


def rate_source(
    raw: RawSource | Path | str,
    as_of: date,
    bundle_dir: Bundle | RatingModel | Path | str,
    config: MonitoringConfig | None = None,
    *,
    previous_as_of: date | None = None,
    judgement_config: JudgementConfig | None = None,
    progress: Progress | None = None,
) -> tuple[RatedPortfolio, AsOfCut]:
    """`rate_parts` of a raw folder or database read as known at ``as_of``, range by range.

    Each range of ``config.chunk_size`` customers is read, cut at ``as_of`` and validated
    (`features.chunks.iter_known_chunks`), rated and dropped: memory follows the range and
    the per-customer results, not the raw records.

    Returns:
        The rated portfolio and what the point-in-time read left out.

    Raises:
        RawValidationError: listing every problem of the records known at ``as_of``.
        ModelIncompatibleError: if the bundle needs features the feature code does not compute.
    """
    config = config or MonitoringConfig()
    cuts: list[AsOfCut] = []

    def parts() -> Iterator[RawTables]:
        for chunk in iter_known_chunks(raw, as_of, config.chunk_size):
            cuts.append(chunk.cut)
            yield chunk.tables

    rated = rate_parts(
        parts(),
        as_of,
        bundle_dir,
        config,
        previous_as_of=previous_as_of,
        judgement_config=judgement_config,
        progress=progress,
    )
    return rated, merge_cuts(cuts, as_of)


def raw_ranges(raw: RawSource | Path | str, as_of: date, chunk_size: int) -> Iterator[RawTables]:
    """The raw tables known at ``as_of``, one validated customer range at a time."""
    for chunk in iter_known_chunks(raw, as_of, chunk_size):
        yield chunk.tables


def run_monitoring(
    raw: RawTables,
    as_of: date,
    bundle_dir: Bundle | RatingModel | Path | str,
    store_path: Path | str = DEFAULT_STORE,
    previous_run_id: str | None = None,
    config: MonitoringConfig | None = None,
    *,
    progress: Progress | None = None,
    created_at: datetime | None = None,
    judgement: JudgementTables | None = None,
    judgement_config: JudgementConfig | None = None,
    records: RecordTables | None = None,
    covenant_config: CovenantConfig | None = None,
    measures: pd.DataFrame | None = None,
    statuses: pd.Series | None = None,
) -> MonitoringRun:
    """Re-rate the portfolio at ``as_of``, store the run and compare it with the previous one.

    Args:
        raw: the raw tables (validated upstream); records after ``as_of`` are ignored for the
            rating, defaults after a past run's date serve its back-test.
        as_of: rating date.
        bundle_dir: the model bundle (folder, loaded bundle or model).
        store_path: the monitoring store (DuckDB file, created if needed).
        previous_run_id: the run to compare with; by default the latest stored run before
            ``as_of`` (``config.auto_previous``), none for the first run.
        config: monitoring settings.
        progress: optional callback ``(done, total)`` of the rating.
        created_at: timestamp recorded with the run (default: now, UTC).
        judgement: assessments and overrides (see `monitoring.judgement`); None: none kept.
        judgement_config: questionnaire, override and data-sufficiency settings.
        records: recorded reviews and contract terms (`features.records`); None: none.
        covenant_config: the reporting grace of the covenant checks.
        measures: active emergency measures per customer
            (`monitoring.warnings.MEASURE_COLUMNS`); None: none active.
        statuses: customer id -> status; None: every customer ``normal``.

    Returns:
        The stored run's findings.

    Raises:
        MonitoringError: for an unknown previous run or one dated after ``as_of``.
        ModelIncompatibleError: if the bundle needs features the feature code does not compute.
    """
    config = config or MonitoringConfig()
    model = as_model(bundle_dir)
    previous_info = previous_run(store_path, as_of, previous_run_id, config)
    rated = rate_parts(
        [raw],
        as_of,
        model,
        config,
        previous_as_of=previous_info.as_of if previous_info is not None else None,
        judgement_config=judgement_config,
        progress=progress,
    )
    return finish_run(
        rated,
        model,
        store_path,
        previous_info,
        config,
        created_at=created_at,
        judgement=judgement,
        judgement_config=judgement_config,
        records=records,
        covenant_config=covenant_config,
        measures=measures,
        statuses=statuses,
    )


def finish_run(
    rated: RatedPortfolio,
    bundle_dir: Bundle | RatingModel | Path | str,
    store_path: Path | str,
    previous_info: RunInfo | None,
    config: MonitoringConfig | None = None,
    *,
    created_at: datetime | None = None,
    judgement: JudgementTables | None = None,
    judgement_config: JudgementConfig | None = None,
    records: RecordTables | None = None,
    covenant_config: CovenantConfig | None = None,
    measures: pd.DataFrame | None = None,
    statuses: pd.Series | None = None,
) -> MonitoringRun:
    """Store a rated portfolio as a run and compare it with ``previous_info``.

    ``rated`` comes from `rate_parts` with the previous run's date; the other arguments are
    those of `run_monitoring`.
    """
    config = config or MonitoringConfig()
    model = as_model(bundle_dir)
    bundle = model.bundle
    store = MonitoringStore(store_path)
    as_of = rated.as_of
    ratings, texts = rated.ratings, rated.texts
    performing = ~ratings["in_default"].to_numpy()
    notes: list[str] = []
    if rated.drift is not None:
        drift = rated.drift.table()
    else:
        drift = pd.DataFrame(columns=DRIFT_COLUMNS)
        notes.append("the bundle has no reference distributions: drift not computed")
    if previous_info is not None and previous_info.bundle_hash != bundle.bundle_hash:
        notes.append(
            f"model changed since the previous run ({previous_info.model_version} -> "
            f"{bundle.metadata.version}): moves include the model change (base_delta)"
        )

    info = RunInfo(
        run_id=store.next_run_id(as_of),
        as_of=as_of,
        created_at=(created_at or datetime.now(UTC)).replace(tzinfo=None),
        previous_run_id=previous_info.run_id if previous_info else None,
        model_version=bundle.metadata.version,
        bundle_hash=bundle.bundle_hash,
        spec_version=model.spec.version,
        feature_names=rated.feature_names,
        customers=len(ratings),
        performing=int(performing.sum()),
        row_counts=rated.row_counts,
        notes=notes,
    )
    store.save_run(info, ratings, rated.contributions, drift)
    current = StoredRun(info=info, ratings=ratings, contributions=rated.contributions)

    tier_matrix = grade_matrix = None
    previous_drift = None
    moves = pd.DataFrame()
    previous_ratings = None
    if previous_info is not None:
        previous = store.load_run(previous_info.run_id)
        previous_ratings = previous.ratings
        prev, curr = (r.set_index("customer_id") for r in (previous.ratings, current.ratings))
        tier_matrix = migration_matrix(prev["tier"], curr["tier"], TIER_LABELS)
        grade_matrix = migration_matrix(prev["grade"], curr["grade"], model.scale.names)
        moves = explain_moves(
            previous,
            current,
            model.spec,
            model.reasons,
            top=config.top_factors,
            lang=config.lang,
        )
        previous_drift = store.drift_of(previous_info.run_id)
    records = cut_records(records or empty_records(), as_of)
    schedule = review_schedule(
        ratings, _store_reviews(store, records, as_of), model.policy, as_of, records.reviews
    )
    checks = _checks(records.contract_terms, rated.covenant_features, as_of, covenant_config)
    previous_checks = None
    if previous_info is not None:
        assert rated.previous_covenant_features is not None  # rated with the previous date
        previous_checks = _checks(
            records.contract_terms,
            rated.previous_covenant_features,
            previous_info.as_of,
            covenant_config,
        )
    warnings = early_warnings(
        ratings,
        previous_ratings,
        schedule,
        texts,
        config.warnings,
        covenants=checks,
        previous_covenants=previous_checks,
        measures=measures if measures is not None else no_measures(),
        statuses=statuses,
    )
    segments = segment_table(ratings, previous_ratings, warnings, statuses)
    by_grade, auc_history = _outcomes(store, rated.defaults, as_of, model.scale, config)
    judgement_config = judgement_config or JudgementConfig()
    sufficiency = rated.sufficiency
    insufficient = int((~sufficiency["sufficient"].to_numpy() & performing).sum())
    findings = None
    if judgement is not None:
        findings = _judgement(
            store,
            rated.defaults,
            ratings,
            as_of,
            model,
            judgement,
            judgement_config,
            sufficiency,
            config,
        )
    return MonitoringRun(
        info=info,
        previous=previous_info,
        ratings=ratings,
        tier_matrix=tier_matrix,
        grade_matrix=grade_matrix,
        moves=moves,
        drift=drift,
        previous_drift=previous_drift,
        grade_outcomes=by_grade,
        auc_history=auc_history,
        warnings=warnings,
        schedule=schedule,
        scale=model.scale,
        policy=model.policy,
        spec=model.spec,
        config=config,
        notes=notes,
        score_edges=[float(e) for e in bundle.reference.get("score", {}).get("edges", [])],
        insufficient_data=insufficient,
        judgement=findings,
        covenants=checks,
        segments=segments,
    )


def _checks(
    terms: pd.DataFrame,
    features: pd.DataFrame,
    as_of: date,
    config: CovenantConfig | None,
) -> pd.DataFrame:
    """The covenant checks of the terms against every customer's covenant features."""
    if terms.empty:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    return check_covenants(terms, features, as_of, config)


def _store_reviews(store: MonitoringStore, records: RecordTables, as_of: date) -> pd.Series:
    """Last reviews the monitoring store knows.

    For a customer with a recorded review only the store's recorded reviews count; the first
    monitoring rating stands in for a review only for a customer never reviewed.
    """
    everything = store.last_reviews(as_of)
    recorded = store.last_reviews(as_of, recorded_only=True)
    raw_ids = set(records.reviews["customer_id"].astype(str))
    return pd.concat(
        [everything[~everything.index.isin(raw_ids)], recorded[recorded.index.isin(raw_ids)]]
    )


COVENANT_FEATURE_NAMES = sorted({feature for feature, _ in COVENANT_FEATURES.values()})
"""The financial features the covenants are checked against."""


def covenant_features(raw: RawTables, as_of: date, ids: set[str] | None = None) -> pd.DataFrame:
    """``customer_id`` and the covenant features at ``as_of`` (`features.groups.financial`).

    Args:
        raw: the raw tables (a portfolio or a customer range of it).
        as_of: the date of the features (statements known then).
        ids: only these customers (None: every customer of ``raw``).
    """
    if ids is not None:
        raw = RawTables(
            **{
                name: frame[frame["customer_id"].astype(str).isin(ids)]
                for name, frame in raw.items()
            }
        )
    features = financial.compute(to_frames(raw), as_of).select(
        "customer_id", *COVENANT_FEATURE_NAMES
    )
    return features.to_pandas()


def covenant_checks(
    raw: RawTables, terms: pd.DataFrame, as_of: date, config: CovenantConfig | None = None
) -> pd.DataFrame:
    """Check the contract terms against the financial features at ``as_of``.

    Only customers with a term are computed; the features are those of the rating
    (`features.groups.financial`), from the statements known at ``as_of``.
    """
    if terms.empty:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    ids = set(terms["customer_id"].astype(str))
    return check_covenants(terms, covenant_features(raw, as_of, ids), as_of, config)


def _judgement(
    store: MonitoringStore,
    defaults: pd.DataFrame,
    ratings: pd.DataFrame,
    as_of: date,
    model: RatingModel,
    judgement: JudgementTables,
    judgement_config: JudgementConfig,
    sufficiency: pd.DataFrame,
    config: MonitoringConfig,
) -> JudgementFindings:
    """Human judgement at ``as_of``, with the outcomes of the latest run old enough."""
    horizon = config.outcomes.horizon_months
    due = [i for i in store.runs_up_to(as_of) if is_due(i.as_of, as_of, horizon)]
    past = None
    if due:
        latest = due[-1]
        columns = ["customer_id", "industry", "pd", "grade", "in_default", "hard_rules"]
        past = (store.ratings_of([latest.run_id], columns).drop(columns="run_id"), latest.as_of)
    known = defaults[pd.to_datetime(defaults["default_date"]) <= pd.Timestamp(as_of)]
    return monitor_judgement(
        ratings,
        as_of,
        judgement,
        model.scale,
        model.policy,
        judgement_config,
        config.judgement,
        sufficiency=sufficiency,
        past=past,
        defaults=known,
        horizon_months=horizon,
    )
