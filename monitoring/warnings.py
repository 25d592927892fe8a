"""Review schedule and early-warning list.

Review schedule: each customer's next review is its last review plus its current tier's review
frequency (credit policy); a review is a recorded officer review or, failing one, the
customer's first monitoring rating. A downgrade into a tier with a shorter frequency brings
the next review forward, possibly into the past: the review is then overdue.

Early warnings (customers already in default at the previous run are in workout, not listed):
grade worsened by ``grade_notches`` or more, entered the high or the restricted tier, hit a
hard rule, defaulted since the previous run, or review overdue. Each trigger calls for a policy
action (`monitoring.config.WarningConfig.actions`); the most severe one is the customer's.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from monitoring.config import Action, Trigger, WarningConfig
from rating.policy import RatingPolicy, Tier

SCHEDULE_COLUMNS = [
    "customer_id",
    "tier",
    "review_frequency_days",
    "last_review",
    "next_review",
    "overdue",
    "days_overdue",
]
WARNING_COLUMNS = [
    "customer_id",
    "industry",
    "previous_grade",
    "grade",
    "grade_notches",
    "previous_tier",
    "tier",
    "pd",
    "triggers",
    "action",
    "reasons",
    "next_review",
]


def review_schedule(
    ratings: pd.DataFrame, last_reviews: pd.Series, policy: RatingPolicy, as_of: date
) -> pd.DataFrame:
    """Next review date per customer from its tier's review frequency.

    Args:
        ratings: current ratings (``customer_id``, ``tier``).
        last_reviews: customer id -> last review date; customers without one count as
            reviewed at ``as_of`` (their first rating).
        policy: the tiers' credit policies.
        as_of: the rating date.

    Returns:
        Columns `SCHEDULE_COLUMNS`, sorted by next review then customer id.
    """
    at = pd.Timestamp(as_of)
    frequency = {t.tier.value: t.policy.review_frequency_days for t in policy.tiers}
    tiers = ratings["tier"].astype(str)
    days = tiers.map(frequency).astype(np.int64).to_numpy()
    last = pd.to_datetime(ratings["customer_id"].map(pd.Series(last_reviews)).fillna(at)).to_numpy()
    next_review = pd.to_datetime(last) + pd.to_timedelta(days, unit="D")
    late = (at - next_review).days.to_numpy()
    schedule = pd.DataFrame(
        {
            "customer_id": ratings["customer_id"].to_numpy(),
            "tier": tiers.to_numpy(),
            "review_frequency_days": days,
            "last_review": pd.to_datetime(last),
            "next_review": next_review,
            "overdue": late > 0,
            "days_overdue": np.maximum(late, 0),
        },
        columns=SCHEDULE_COLUMNS,
    )
    return schedule.sort_values(["next_review", "customer_id"]).reset_index(drop=True)


def early_warnings(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    schedule: pd.DataFrame,
    reasons: pd.Series,
    config: WarningConfig | None = None,
) -> pd.DataFrame:
    """The early-warning list with triggers, reasons and the policy action.

    Args:
        current: current ratings (`monitoring.store.RATING_COLUMNS`).
        previous: the previous run's ratings, or None (then only hard rules and overdue
            reviews can trigger).
        schedule: the review schedule of the current run.
        reasons: customer id -> reason text of the current rating.
        config: trigger thresholds and actions.

    Returns:
        Columns `WARNING_COLUMNS` (``triggers`` ``;``-joined), most severe action first,
        then worst grade, then customer id.
    """
    config = config or WarningConfig()
    cur = current.set_index("customer_id")
    ids = cur.index
    if previous is not None:
        prev = previous.set_index("customer_id").reindex(ids)
        known = prev["grade_index"].notna().to_numpy()
        prev_default = prev["in_default"].fillna(False).astype(bool).to_numpy()
        prev_rank = prev["tier_rank"].fillna(-1).to_numpy(dtype=np.int64)
        prev_grade_index = prev["grade_index"].fillna(-1).to_numpy(dtype=np.int64)
        prev_grade = prev["grade"].astype(object).where(known, None).to_numpy()
        prev_tier = prev["tier"].astype(object).where(known, None).to_numpy()
    else:
        n = len(ids)
        known = np.zeros(n, dtype=bool)
        prev_default = np.zeros(n, dtype=bool)
        prev_rank = np.full(n, -1, dtype=np.int64)
        prev_grade_index = np.full(n, -1, dtype=np.int64)
        prev_grade = np.full(n, None, dtype=object)
        prev_tier = np.full(n, None, dtype=object)
    in_default = cur["in_default"].astype(bool).to_numpy()
    rank = cur["tier_rank"].to_numpy(dtype=np.int64)
    grade_index = cur["grade_index"].to_numpy(dtype=np.int64)
    notches = np.where(known, grade_index - prev_grade_index, 0)
    overdue = schedule.set_index("customer_id")["overdue"].reindex(ids).fillna(False).to_numpy(bool)
    hard = cur["hard_rules"].astype(str).str.len().to_numpy() > 0
    high, restricted = Tier.HIGH.rank, Tier.RESTRICTED.rank
    fired = {
        Trigger.GRADE_DROP: known & (notches >= config.grade_notches),
        Trigger.ENTERED_HIGH: known & (prev_rank < high) & (rank == high),
        Trigger.ENTERED_RESTRICTED: known & (prev_rank < restricted) & (rank == restricted),
        Trigger.HARD_RULE: hard & ~in_default,
        Trigger.NEW_DEFAULT: known & in_default & ~prev_default,
        Trigger.REVIEW_OVERDUE: overdue & ~in_default,
    }
    listed = np.zeros(len(ids), dtype=bool)
    for mask in fired.values():
        listed |= mask
    listed &= ~prev_default
    rows = np.flatnonzero(listed)
    triggers, actions, severity = [], [], []
    for i in rows:
        hit = [t for t, mask in fired.items() if mask[i]]
        action = max((config.actions[t] for t in hit), key=lambda a: a.severity)
        triggers.append(";".join(t.value for t in hit))
        actions.append(action.value)
        severity.append(action.severity)
    next_review = schedule.set_index("customer_id")["next_review"].reindex(ids).to_numpy()
    table = pd.DataFrame(
        {
            "customer_id": ids[rows].to_numpy(),
            "industry": cur["industry"].to_numpy()[rows],
            "previous_grade": prev_grade[rows],
            "grade": cur["grade"].to_numpy()[rows],
            "grade_notches": notches[rows],
            "previous_tier": prev_tier[rows],
            "tier": cur["tier"].to_numpy()[rows],
            "pd": cur["pd"].to_numpy()[rows],
            "triggers": triggers,
            "action": actions,
            "reasons": pd.Series(reasons).reindex(ids[rows]).fillna("").to_numpy(),
            "next_review": next_review[rows],
        },
        columns=WARNING_COLUMNS,
    )
    table["_severity"] = severity
    table["_grade"] = grade_index[rows]
    return (
        table.sort_values(["_severity", "_grade", "customer_id"], ascending=[False, False, True])
        .drop(columns=["_severity", "_grade"])
        .reset_index(drop=True)
    )


def action_counts(warnings: pd.DataFrame) -> dict[str, int]:
    """Early warnings per action, most severe first (zeros kept)."""
    counts = warnings["action"].value_counts()
    return {a.value: int(counts.get(a.value, 0)) for a in sorted(Action, key=lambda a: -a.severity)}
