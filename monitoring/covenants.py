"""Covenant checks: every contract term in force against the point-in-time features at a date.

A ratio covenant is breached when its feature lies beyond the threshold (above a maximum,
below a minimum); a ratio that cannot be computed (no statement, zero denominator) is not
observed and breaches nothing: the reporting covenant covers missing statements. The reporting
covenant (``reporting_months`` = N) is due N months after the latest known statement's period
end plus the grace for publication; without any known statement it is due N months plus the
grace after the term took effect. Past that day the report is missing: a breach with its days
past due.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from features.covenants import COVENANT_FEATURES, Covenant, CovenantConfig

CHECK_COLUMNS = [
    "customer_id",
    "covenant",
    "threshold",
    "feature",
    "observed",
    "breached",
    "days_past_reporting_due",
    "effective_date",
]
_DAYS_PER_MONTH = 365.25 / 12


def terms_in_force(terms: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The contract terms in force at ``as_of``: the latest effective one per covenant.

    Args:
        terms: ``contract_terms`` rows (validated by the raw contract).
        as_of: the check date.
    """
    at = pd.Timestamp(as_of)
    effective = pd.to_datetime(terms["effective_date"])
    expiry = pd.to_datetime(terms["expiry_date"])
    live = terms.loc[(effective <= at) & (expiry.isna() | (expiry > at))]
    return (
        live.sort_values(["customer_id", "covenant", "effective_date"])
        .drop_duplicates(["customer_id", "covenant"], keep="last")
        .reset_index(drop=True)
    )


def check_covenants(
    terms: pd.DataFrame,
    features_at_date: pd.DataFrame,
    as_of: date,
    config: CovenantConfig | None = None,
) -> pd.DataFrame:
    """Check every covenant in force at ``as_of`` against the features at that date.

    Args:
        terms: ``contract_terms`` rows (any dates; those in force at ``as_of`` are checked).
        features_at_date: ``customer_id`` and the covenant features computed at ``as_of``
            (`features.groups.financial`); a customer missing here is not observed.
        as_of: the check date.
        config: the reporting grace (templates are not needed to check).

    Returns:
        Columns `CHECK_COLUMNS`, one row per (customer, covenant) in force, sorted by
        customer then covenant; ``days_past_reporting_due`` is 0 unless a report is missing.
    """
    config = config or CovenantConfig()
    live = terms_in_force(terms, as_of)
    if live.empty:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    by_id = features_at_date.set_index("customer_id")
    covenant = live["covenant"].astype(str).to_numpy()
    threshold = live["threshold"].to_numpy(dtype=float)
    feature = np.array([COVENANT_FEATURES[Covenant(c)][0] for c in covenant], dtype=object)
    observed = np.full(len(live), np.nan)
    for name in np.unique(feature):
        rows = feature == name
        if name in by_id.columns:
            values = by_id[name].reindex(live["customer_id"].to_numpy()[rows])
            observed[rows] = values.to_numpy(dtype=float)
    is_max = np.array([COVENANT_FEATURES[Covenant(c)][1] == "max" for c in covenant])
    reporting = covenant == Covenant.REPORTING_MONTHS.value
    known = ~np.isnan(observed)
    breached = known & np.where(is_max, observed > threshold, observed < threshold)
    # Reporting: due N months (plus the grace) after the latest period end, or after the
    # term took effect when no statement is known.
    at = pd.Timestamp(as_of)
    grace = config.reporting_grace_days
    since_effective = (at - pd.to_datetime(live["effective_date"])).dt.days.to_numpy(float)
    late_known = observed * _DAYS_PER_MONTH - threshold * _DAYS_PER_MONTH - grace
    late_unknown = since_effective - threshold * _DAYS_PER_MONTH - grace
    late = np.where(known, late_known, late_unknown)
    days_past = np.where(reporting, np.maximum(np.round(late), 0), 0).astype(np.int64)
    breached = np.where(reporting, days_past > 0, breached)
    table = pd.DataFrame(
        {
            "customer_id": live["customer_id"].to_numpy(),
            "covenant": covenant,
            "threshold": threshold,
            "feature": feature,
            "observed": observed,
            "breached": breached.astype(bool),
            "days_past_reporting_due": days_past,
            "effective_date": pd.to_datetime(live["effective_date"]).to_numpy(),
        },
        columns=CHECK_COLUMNS,
    )
    return table.sort_values(["customer_id", "covenant"]).reset_index(drop=True)


def breach_text(row: pd.Series) -> str:
    """One line naming a breached covenant, its threshold and the observed value."""
    if row["covenant"] == Covenant.REPORTING_MONTHS.value:
        seen = (
            "no statement known"
            if pd.isna(row["observed"])
            else f"last period ended {row['observed']:.0f} months ago"
        )
        return (
            f"financial report every {row['threshold']:.0f} months missing: {seen}, "
            f"{int(row['days_past_reporting_due'])} days past due"
        )
    kind = "max" if COVENANT_FEATURES[Covenant(row["covenant"])][1] == "max" else "min"
    return f"{row['feature']} {row['observed']:.3g} breaches {kind} {row['threshold']:.3g}"
