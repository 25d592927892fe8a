"""Stress tests: a macro scenario applied to the point-in-time records, rated against the base.

The scenario (`monitoring.scenario`) shocks the raw records the features read, never the
features: the latest statement known at the rating date, the instalments due in a recent
window and the incoming transactions (`apply_shocks`). The shocked tables go through the same
feature code and the same batch rating path (`rating.portfolio.rate_portfolio`) as the base,
so every ratio stays consistent with its definition, hard rules still force the restricted
tier and customers in default keep the default grade.

`stress` compares the two ratings at one date: grade and tier migration matrices, expected
defaults (sum of PDs of the performing customers) per industry, region and overall, covenant
breaches when a covenant check is given, and the customers the scenario improved, each with
its cause (`IMPROVEMENT_CAUSES`). None is expected when the shocks move only features with a
monotone constraint (see `monitoring.scenario` for why each shock worsens its records); the
inflow shock moves transaction amounts, which have none, and a booster that breaks its own
constraints shows up as ``model_not_monotone``.

Memory: the shocked tables are copies of the raw tables the scenario touches (statements,
repayments, transactions), next to the two portfolio ratings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from features.covenants import CovenantConfig, template_terms
from features.errors import RiskgradeError
from features.groups.common import window_start
from features.io import RawTables
from monitoring.covenants import check_covenants, terms_in_force
from monitoring.migration import TIER_LABELS, MigrationMatrix, migration_matrix
from monitoring.run import ratings_frame
from monitoring.scenario import SHOCK_COLUMNS, Scenario, customer_shocks
from rating.bundle import Bundle
from rating.model import RatingModel
from rating.portfolio import PortfolioRating, Progress, as_model, portfolio_ids, rate_portfolio

CovenantCheck = Callable[[pd.DataFrame], pd.Series]
"""Given one row per customer (``customer_id``, ``tier`` and every model feature by name),
True where the customer breaches a covenant of its contract. `stress` passes the base tier
in both ratings: a scenario changes the customer's figures, not the contract it signed."""


CUSTOMER_COLUMNS: Final[list[str]] = [
    "customer_id",
    "industry",
    "region",
    "size_class",
    "in_default",
    "shocked",
    "base_pd",
    "stressed_pd",
    "base_grade",
    "stressed_grade",
    "grade_notches",
    "base_tier",
    "stressed_tier",
    "tier_notches",
    "hard_rules",
    "base_breach",
    "stressed_breach",
    "improved",
    "improved_because",
]
"""Per-customer columns of `StressResult.customers`. Breaches are null without a covenant
check. ``improved``: a performing customer with a lower PD (beyond ``PD_TOLERANCE``), or a
better grade or tier, under stress; ``improved_because`` says why (`IMPROVEMENT_CAUSES`)."""

IMPROVEMENT_CAUSES: Final[dict[str, str]] = {
    "unconstrained_feature": "a feature without a monotone constraint changed "
    "(transaction amounts, active facilities)",
    "missing_value": "a feature became undefined or defined (a ratio with a zero denominator)",
    "favourable_feature": "a feature moved in its favourable direction",
    "model_not_monotone": "only features with a monotone constraint moved, each the adverse "
    "way: the model breaks its own constraint",
}
"""Why a customer improved under stress, checked in this order."""

SEGMENT_COLUMNS: Final[list[str]] = [
    "dimension",
    "segment",
    "customers",
    "shocked",
    "performing",
    "base_expected_defaults",
    "stressed_expected_defaults",
    "change",
    "change_pct",
    "base_mean_pd",
    "stressed_mean_pd",
    "grade_downgrades",
    "tier_downgrades",
    "entered_restricted",
    "base_breaches",
    "stressed_breaches",
]
"""Columns of `StressResult.segments`: one row overall, then per industry, then per region."""


PD_TOLERANCE: Final[float] = 1e-9
"""Relative PD change below which a customer is not counted as improved (float noise)."""


class StressError(RiskgradeError, ValueError):
    """A stress test cannot run on its input (no customer at the date, a bad chunk size)."""


@dataclass(frozen=True)
class StressResult:
    """The stressed portfolio against the unstressed base at the same date."""

    scenario: Scenario
    as_of: date
    model_version: str
    bundle_hash: str
    customers: pd.DataFrame
    """One row per customer rated at ``as_of`` (`CUSTOMER_COLUMNS`), sorted by id."""
    segments: pd.DataFrame
    """Expected defaults and moves overall, per industry and per region (`SEGMENT_COLUMNS`)."""
    grade_matrix: MigrationMatrix
    """Base grade (rows) to stressed grade (columns)."""
    tier_matrix: MigrationMatrix
    """Base tier (rows) to stressed tier (columns)."""
    shocked_records: dict[str, int]
    """Records changed per raw table."""
    covenants_checked: bool
    notes: list[str] = field(default_factory=list)

    @property
    def improved(self) -> int:
        """Performing customers the scenario rated better (see `CUSTOMER_COLUMNS`)."""
        return int(self.customers["improved"].sum())

    def overall(self) -> pd.Series:
        """The portfolio row of `segments`."""
        return self.segments.iloc[0]


def _latest_known_statements(statements: pd.DataFrame, as_of: date) -> pd.Index:
    """Row labels of each customer's latest statement known at ``as_of``.

    The one the features read: the latest ``period_end`` among those published by then.
    """
    known = statements[pd.to_datetime(statements["published_date"]) <= pd.Timestamp(as_of)]
    if known.empty:
        return known.index
    return pd.Index(known.groupby("customer_id", sort=False)["period_end"].idxmax().to_numpy())


def _shock_statements(
    statements: pd.DataFrame, shocks: pd.DataFrame, as_of: date
) -> tuple[pd.DataFrame, int]:
    rows = _latest_known_statements(statements, as_of)
    latest = statements.loc[rows]
    s = shocks.reindex(latest["customer_id"].astype(str)).fillna(0.0)
    r, d, c = (s[k].to_numpy() for k in ("revenue", "operating_margin", "cash_flow"))
    hit = (r > 0) | (d > 0) | (c > 0)
    if not hit.any():
        return statements, 0
    revenue = latest["revenue"].to_numpy(dtype=np.float64)
    lost = r * revenue
    extra_cost = d * (revenue - lost)
    base_cash_flow = latest["operating_cash_flow"].to_numpy(dtype=np.float64)
    cash_flow = base_cash_flow - lost - extra_cost
    cash_flow = cash_flow - c * np.abs(cash_flow)
    borrowed = base_cash_flow - cash_flow  # the lost operating cash, borrowed short term
    out = statements.copy()
    out.loc[rows, "revenue"] = revenue - lost
    out.loc[rows, "operating_costs"] = latest["operating_costs"].to_numpy() + extra_cost
    out.loc[rows, "net_income"] = latest["net_income"].to_numpy() - lost - extra_cost
    out.loc[rows, "operating_cash_flow"] = cash_flow
    out.loc[rows, "current_liabilities"] = latest["current_liabilities"].to_numpy() + borrowed
    out.loc[rows, "total_liabilities"] = latest["total_liabilities"].to_numpy() + borrowed
    return out, int(hit.sum())


def instalment_draw(repayments: pd.DataFrame) -> np.ndarray:
    """A uniform number in [0, 1) per instalment, fixed by (facility, instalment number).

    The overdue shock hits the instalments whose draw is below its share, so a larger share
    hits the same instalments and more, whatever the row order.
    """
    keys = repayments[["facility_id", "instalment_no"]].astype(str)
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy(dtype=np.uint64)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)


def _shock_repayments(
    repayments: pd.DataFrame, facilities: pd.DataFrame, shocks: pd.DataFrame, as_of: date
) -> tuple[pd.DataFrame, int]:
    s = shocks.reindex(repayments["customer_id"].astype(str)).fillna(0.0)
    share, days = s["overdue_share"].to_numpy(), s["overdue_days"].to_numpy()
    months = s["overdue_months"].to_numpy().astype(np.int64)
    if not ((share > 0) & (days > 0)).any():
        return repayments, 0
    day = pd.Timestamp(as_of)
    starts = {m: pd.Timestamp(window_start(as_of, int(m))) for m in np.unique(months) if m >= 1}
    start = np.array([starts.get(m, pd.Timestamp.max) for m in months], dtype="datetime64[ns]")
    due = pd.to_datetime(repayments["due_date"]).to_numpy()
    paid = pd.to_datetime(repayments["paid_date"])
    # Only facilities still running at as_of: an unpaid instalment would make a matured one
    # active again, adding its limit to the denominators of utilisation and overdue/limit.
    maturity = pd.to_datetime(facilities.set_index("facility_id")["maturity_date"])
    running = (maturity.reindex(repayments["facility_id"]) > day).to_numpy()
    hit = (
        running
        & (instalment_draw(repayments) < share)
        & (days > 0)
        & (due >= start)
        & (due <= day.to_datetime64())
        & paid.notna().to_numpy()
        & (paid <= day).to_numpy()
    )
    if not hit.any():
        return repayments, 0
    later = paid + pd.to_timedelta(days, unit="D")
    unpaid = hit & (later > day).to_numpy()  # paid after as_of: unpaid then, as the cut shows it
    out = repayments.copy()
    new_paid = paid.where(~hit, later).where(~unpaid, pd.NaT)
    out["paid_date"] = new_paid.astype(repayments["paid_date"].dtype)
    out.loc[unpaid, "amount_paid"] = 0.0
    return out, int(hit.sum())


def _shock_transactions(
    transactions: pd.DataFrame, shocks: pd.DataFrame
) -> tuple[pd.DataFrame, int]:
    fall = shocks["inflows"].reindex(transactions["customer_id"].astype(str)).fillna(0.0)
    hit = (transactions["direction"] == "in").to_numpy() & (fall.to_numpy() > 0)
    if not hit.any():
        return transactions, 0
    out = transactions.copy()
    amounts = out["amount"].to_numpy(dtype=np.float64)
    out["amount"] = np.where(hit, amounts * (1.0 - fall.to_numpy()), amounts)
    return out, int(hit.sum())


def apply_shocks(
    raw: RawTables, shocks: pd.DataFrame, as_of: date
) -> tuple[RawTables, dict[str, int]]:
    """The raw tables with each customer's shocks applied, as known at ``as_of``.

    Args:
        raw: the raw tables (records after ``as_of`` may be present; they are not shocked
            except incoming transactions, which features only read in their window).
        shocks: `monitoring.scenario.customer_shocks` (indexed by ``customer_id``).
        as_of: the rating date.

    Returns:
        The shocked tables (the contract still holds) and the records changed per table.
    """
    missing = [c for c in SHOCK_COLUMNS if c not in shocks.columns]
    if missing:
        raise StressError(f"shock table lacks columns {missing}")
    statements, n_statements = _shock_statements(raw.financial_statements, shocks, as_of)
    repayments, n_repayments = _shock_repayments(
        raw.repayments, raw.credit_facilities, shocks, as_of
    )
    transactions, n_transactions = _shock_transactions(raw.transactions, shocks)
    shocked = RawTables(
        customers=raw.customers,
        financial_statements=statements,
        credit_facilities=raw.credit_facilities,
        repayments=repayments,
        transactions=transactions,
        defaults=raw.defaults,
    )
    counts = {
        "financial_statements": n_statements,
        "repayments": n_repayments,
        "transactions": n_transactions,
    }
    return shocked, counts


def improvement_causes(
    base: PortfolioRating, stressed: PortfolioRating, improved: np.ndarray
) -> np.ndarray:
    """Why each improved customer improved (a key of `IMPROVEMENT_CAUSES`; "" if not improved).

    Both ratings must hold the same customers in the same order (as `stress` makes them).
    """
    direction = np.array([f.monotone_constraint for f in base.model.spec.features])
    x, y = base.features, stressed.features
    flipped = np.isnan(x) != np.isnan(y)
    changed = flipped | (~np.isnan(x) & ~np.isnan(y) & (x != y))
    constrained = direction != 0
    favourable = ~flipped & (direction * np.nan_to_num(y - x) < 0)
    cause = np.select(
        [
            (changed & ~constrained).any(axis=1),
            (flipped & constrained).any(axis=1),
            (favourable & constrained).any(axis=1),
        ],
        ["unconstrained_feature", "missing_value", "favourable_feature"],
        "model_not_monotone",
    )
    return np.where(improved, cause, "")


def _features(rating: PortfolioRating, tiers: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame(rating.features, columns=rating.feature_names)
    frame.insert(0, "customer_id", rating.customer_ids)
    frame.insert(1, "tier", tiers.to_numpy())
    return frame


def _breaches(check: CovenantCheck, rating: PortfolioRating, tiers: pd.Series) -> np.ndarray:
    flags = check(_features(rating, tiers))
    values = np.asarray(flags, dtype=bool)
    if values.shape != (len(rating),):
        raise StressError(
            f"the covenant check returned {values.shape[0] if values.ndim else 0} flags "
            f"for {len(rating)} customers"
        )
    return values


def contract_covenant_check(
    config: CovenantConfig, as_of: date, terms: pd.DataFrame | None = None
) -> CovenantCheck:
    """A covenant check of each customer's contract (`monitoring.covenants.check_covenants`).

    A customer's contract is its ``contract_terms`` in force at ``as_of``; a customer without
    any is checked against its tier's template (params.yaml ``covenants:``), as if its
    contract were written at ``as_of``.

    Args:
        config: the tier templates and the reporting grace.
        as_of: the rating date.
        terms: recorded contract terms (None: templates for everyone).
    """
    recorded = terms_in_force(terms, as_of) if terms is not None else None

    def check(frame: pd.DataFrame) -> pd.Series:
        ids = frame["customer_id"].astype(str)
        signed = set(recorded["customer_id"].astype(str)) if recorded is not None else set()
        unsigned = ~ids.isin(signed)
        templated = template_terms(
            ids[unsigned].tolist(),
            frame.loc[unsigned, "tier"].astype(str).tolist(),
            [as_of] * int(unsigned.sum()),
            config,
        )
        parts = [templated] if recorded is None or recorded.empty else [recorded, templated]
        checks = check_covenants(pd.concat(parts, ignore_index=True), frame, as_of, config)
        if checks.empty:
            return pd.Series(False, index=frame.index)
        breached = (
            checks.assign(breached=checks["breached"].astype(bool))
            .groupby("customer_id")["breached"]
            .any()
        )
        return pd.Series(
            breached.reindex(ids.to_numpy()).fillna(False).to_numpy(dtype=bool),
            index=frame.index,
        )

    return check


def _segment_rows(frame: pd.DataFrame, dimension: str, key: pd.Series | str) -> pd.DataFrame:
    performing = ~frame["in_default"]
    grouped = frame.assign(
        _perf=performing,
        _base=frame["base_pd"].where(performing, 0.0),
        _stressed=frame["stressed_pd"].where(performing, 0.0),
        _base_perf=frame["base_pd"].where(performing),
        _stressed_perf=frame["stressed_pd"].where(performing),
        _grade_down=frame["grade_notches"] > 0,
        _tier_down=frame["tier_notches"] > 0,
        _restricted=(frame["base_tier"] != "restricted") & (frame["stressed_tier"] == "restricted"),
        _key=key,
    ).groupby("_key", sort=True)
    out = pd.DataFrame(
        {
            "customers": grouped.size(),
            "shocked": grouped["shocked"].sum(),
            "performing": grouped["_perf"].sum(),
            "base_expected_defaults": grouped["_base"].sum(),
            "stressed_expected_defaults": grouped["_stressed"].sum(),
            "base_mean_pd": grouped["_base_perf"].mean(),
            "stressed_mean_pd": grouped["_stressed_perf"].mean(),
            "grade_downgrades": grouped["_grade_down"].sum(),
            "tier_downgrades": grouped["_tier_down"].sum(),
            "entered_restricted": grouped["_restricted"].sum(),
            "base_breaches": grouped["base_breach"].sum(min_count=1),
            "stressed_breaches": grouped["stressed_breach"].sum(min_count=1),
        }
    )
    out["change"] = out["stressed_expected_defaults"] - out["base_expected_defaults"]
    base = out["base_expected_defaults"].where(out["base_expected_defaults"] > 0)
    out["change_pct"] = out["change"] / base
    out = out.reset_index(names="segment")
    out.insert(0, "dimension", dimension)
    return out


def segment_table(customers: pd.DataFrame) -> pd.DataFrame:
    """Expected defaults and moves: the portfolio, then each industry, then each region."""
    parts = [
        _segment_rows(customers, "portfolio", pd.Series("all", index=customers.index)),
        _segment_rows(customers, "industry", customers["industry"]),
        _segment_rows(customers, "region", customers["region"]),
    ]
    table = pd.concat(parts, ignore_index=True)[SEGMENT_COLUMNS]
    for column in ("base_breaches", "stressed_breaches"):
        table[column] = table[column].astype("Int64")
    return table


def stress(
    raw: RawTables,
    scenario: Scenario,
    bundle: Bundle | RatingModel | Path | str,
    as_of: date,
    *,
    covenants: CovenantCheck | None = None,
    chunk_size: int = 10_000,
    progress: Progress | None = None,
) -> StressResult:
    """Rate the portfolio at ``as_of`` unstressed and under ``scenario``, and compare.

    Args:
        raw: the raw tables (validated upstream; the point-in-time read of ``as_of``).
        scenario: the shocks (`monitoring.scenario.load_scenario`).
        bundle: the model bundle (folder, loaded bundle or model).
        as_of: rating date of both ratings.
        covenants: a check of each customer's tier covenants on its features; None: breaches
            are not counted.
        chunk_size: customers per rating chunk.
        progress: optional callback ``(done, total)`` over both ratings (total = 2 x customers).

    Returns:
        Per-customer base and stressed ratings, segment table and migration matrices.

    Raises:
        StressError: if no customer was onboarded by ``as_of``.
        ModelIncompatibleError: if the bundle needs features the feature code does not compute.
    """
    model = as_model(bundle)
    ids = portfolio_ids(raw, as_of)
    if not ids:
        first = pd.to_datetime(raw.customers["onboarding_date"]).min()
        since = "no customers at all" if pd.isna(first) else f"the first on {first.date()}"
        raise StressError(f"no customer was onboarded by as_of {as_of} ({since})")
    customers = raw.customers[raw.customers["customer_id"].astype(str).isin(ids)]
    shocks = customer_shocks(customers, scenario)
    shocked_raw, counts = apply_shocks(raw, shocks, as_of)

    def step(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda done, total: progress(offset + done, 2 * len(ids))

    base = rate_portfolio(raw, as_of, model, chunk_size, step(0))
    stressed = rate_portfolio(shocked_raw, as_of, model, chunk_size, step(len(ids)))
    b, _ = ratings_frame(base, raw)
    s, _ = ratings_frame(stressed, shocked_raw)
    shocked = (shocks.reindex(b["customer_id"]).to_numpy() > 0).any(axis=1)
    frame = pd.DataFrame(
        {
            "customer_id": b["customer_id"],
            "industry": b["industry"],
            "region": b["region"],
            "size_class": b["size_class"],
            "in_default": b["in_default"].astype(bool),
            "shocked": shocked,
            "base_pd": b["pd"],
            "stressed_pd": s["pd"],
            "base_grade": b["grade"],
            "stressed_grade": s["grade"],
            "grade_notches": s["grade_index"] - b["grade_index"],
            "base_tier": b["tier"],
            "stressed_tier": s["tier"],
            "tier_notches": s["tier_rank"] - b["tier_rank"],
            "hard_rules": b["hard_rules"],
            "base_breach": pd.array([pd.NA] * len(b), dtype="boolean"),
            "stressed_breach": pd.array([pd.NA] * len(b), dtype="boolean"),
            "improved": False,
            "improved_because": "",
        },
        columns=CUSTOMER_COLUMNS,
    )
    lower = frame["stressed_pd"] < frame["base_pd"] * (1.0 - PD_TOLERANCE)
    better = lower | (frame["grade_notches"] < 0) | (frame["tier_notches"] < 0)
    improved = (better & ~frame["in_default"]).to_numpy()
    frame["improved"] = improved
    frame["improved_because"] = improvement_causes(base, stressed, improved)
    if covenants is not None:
        frame["base_breach"] = pd.array(_breaches(covenants, base, b["tier"]), dtype="boolean")
        frame["stressed_breach"] = pd.array(
            _breaches(covenants, stressed, b["tier"]), dtype="boolean"
        )
    by_id = frame.set_index("customer_id")
    result = StressResult(
        scenario=scenario,
        as_of=as_of,
        model_version=model.bundle.metadata.version,
        bundle_hash=model.bundle.bundle_hash,
        customers=frame,
        segments=segment_table(frame),
        grade_matrix=migration_matrix(
            by_id["base_grade"], by_id["stressed_grade"], model.scale.names
        ),
        tier_matrix=migration_matrix(by_id["base_tier"], by_id["stressed_tier"], TIER_LABELS),
        shocked_records=counts,
        covenants_checked=covenants is not None,
    )
    notes = result.notes
    if not shocked.any():
        notes.append("the scenario hits no customer of the portfolio (industries/regions)")
    if covenants is None:
        notes.append("no covenant check given: covenant breaches not counted")
    if result.improved:
        causes = frame.loc[improved, "improved_because"].value_counts()
        notes.append(
            f"{result.improved} customer(s) rated better under stress: "
            + "; ".join(f"{n} where {IMPROVEMENT_CAUSES[c]}" for c, n in causes.items())
        )
    return result
