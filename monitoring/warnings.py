"""Review schedule and the early-warning list: one row per customer, ranked by severity.

Review schedule: a customer's last review is its latest recorded review (the raw ``reviews``
table, or reviews recorded in the monitoring store), failing one its first monitoring rating.
The next review is the date the reviewer set at that review (from the tier's frequency then);
without a reviewer's date it is the last review plus the current tier's frequency. A downgrade
since the review is a trigger of its own, not a second one through the schedule. Past the next
review date the review is overdue: one trigger with its days overdue.

Early warnings (customers already in default at the previous run are in workout, not listed):
grade worsened by ``grade_notches`` or more, entered the high or the restricted tier, hit a
hard rule, defaulted since the previous run, breached a covenant, missed a financial report
the contract requires, review overdue, or covered by an active emergency measure. The list is
news: a hard rule, covenant breach or missing report already there at the previous run is not
listed again (the covenant table of the run shows every breach in force); an overdue review
stays listed until the review is recorded. Each trigger has a severity
(`monitoring.config.WarningConfig`; null: the trigger is not used); the customer's severity is
the highest one, raised a level when several serious triggers fire together; the severity
proposes an action and, when stricter than the customer's current status, a status transition.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from features.covenants import Covenant
from monitoring.config import (
    ACTION_STATUS,
    CUSTOMER_STATUSES,
    Action,
    MonitoringError,
    Severity,
    Trigger,
    WarningConfig,
)
from monitoring.covenants import CHECK_COLUMNS, breach_text
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
    "region",
    "size_class",
    "previous_grade",
    "grade",
    "grade_notches",
    "previous_tier",
    "tier",
    "pd",
    "status",
    "severity",
    "action",
    "proposed_status",
    "triggers",
    "details",
    "reasons",
    "next_review",
]
MEASURE_COLUMNS = ["customer_id", "measure_id", "reason"]
"""Active emergency measures per customer they cover (management resolves scopes to customers)."""


def no_measures() -> pd.DataFrame:
    """The empty table of active measures (the default until measures exist)."""
    return pd.DataFrame({c: pd.Series(dtype="string") for c in MEASURE_COLUMNS})


def latest_reviews(reviews: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Each customer's latest review on or before ``as_of`` (raw ``reviews`` rows)."""
    known = reviews.loc[pd.to_datetime(reviews["review_date"]) <= pd.Timestamp(as_of)]
    return (
        known.sort_values(["customer_id", "review_date"])
        .drop_duplicates("customer_id", keep="last")
        .set_index("customer_id")[["review_date", "next_review_date"]]
    )


def review_schedule(
    ratings: pd.DataFrame,
    last_reviews: pd.Series,
    policy: RatingPolicy,
    as_of: date,
    reviews: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Next review date per customer from its last review and its tier's review frequency.

    Args:
        ratings: current ratings (``customer_id``, ``tier``).
        last_reviews: customer id -> last review date known to the monitoring store; customers
            without one nor a recorded review count as reviewed at ``as_of`` (first rating).
        policy: the tiers' credit policies.
        as_of: the rating date.
        reviews: recorded reviews (raw ``reviews`` table); the latest one wins unless the
            store knows a later review.

    Returns:
        Columns `SCHEDULE_COLUMNS`, sorted by next review then customer id.
    """
    at = pd.Timestamp(as_of)
    frequency = {t.tier.value: t.policy.review_frequency_days for t in policy.tiers}
    ids = ratings["customer_id"]
    tiers = ratings["tier"].astype(str)
    days = pd.to_timedelta(tiers.map(frequency).astype(np.int64).to_numpy(), unit="D")
    stored = pd.to_datetime(ids.map(pd.Series(last_reviews, dtype="datetime64[ns]"))).to_numpy()
    if reviews is not None and len(reviews):
        latest = latest_reviews(reviews, as_of).reindex(ids.to_numpy())
        raw_last = pd.to_datetime(latest["review_date"]).to_numpy()
        raw_next = pd.to_datetime(latest["next_review_date"]).to_numpy()
    else:
        raw_last = raw_next = np.full(len(ids), np.datetime64("NaT"), dtype="datetime64[ns]")
    use_raw = ~pd.isna(raw_last) & (pd.isna(stored) | (raw_last >= stored))
    last = pd.DatetimeIndex(np.where(use_raw, raw_last, stored)).fillna(at)
    next_review = pd.DatetimeIndex(np.where(use_raw, raw_next, last + days))
    late = (at - next_review).days.to_numpy()
    schedule = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "tier": tiers.to_numpy(),
            "review_frequency_days": days.days.to_numpy(),
            "last_review": last,
            "next_review": next_review,
            "overdue": late > 0,
            "days_overdue": np.maximum(late, 0),
        },
        columns=SCHEDULE_COLUMNS,
    )
    return schedule.sort_values(["next_review", "customer_id"]).reset_index(drop=True)


def _previous(previous: pd.DataFrame | None, ids: pd.Index) -> dict[str, np.ndarray]:
    n = len(ids)
    if previous is None:
        return {
            "known": np.zeros(n, dtype=bool),
            "default": np.zeros(n, dtype=bool),
            "rank": np.full(n, -1, dtype=np.int64),
            "grade_index": np.full(n, -1, dtype=np.int64),
            "grade": np.full(n, None, dtype=object),
            "tier": np.full(n, None, dtype=object),
            "hard": np.zeros(n, dtype=bool),
        }
    prev = previous.set_index("customer_id").reindex(ids)
    known = prev["grade_index"].notna().to_numpy()
    return {
        "known": known,
        "default": prev["in_default"].astype("boolean").fillna(False).to_numpy(bool),
        "rank": prev["tier_rank"].fillna(-1).to_numpy(dtype=np.int64),
        "grade_index": prev["grade_index"].fillna(-1).to_numpy(dtype=np.int64),
        "grade": prev["grade"].astype(object).where(known, None).to_numpy(),
        "tier": prev["tier"].astype(object).where(known, None).to_numpy(),
        "hard": prev["hard_rules"].fillna("").astype(str).str.len().to_numpy() > 0,
    }


def _lines(frame: pd.DataFrame, ids: pd.Index, text: pd.Series) -> np.ndarray:
    """Per customer of ``ids``: its lines of ``text`` joined by '; ' ('' when none)."""
    if frame.empty:
        return np.full(len(ids), "", dtype=object)
    joined = text.groupby(frame["customer_id"].to_numpy()).agg("; ".join)
    return joined.reindex(ids).fillna("").to_numpy(dtype=object)


def _rank(severity: Severity | None) -> int:
    return -1 if severity is None else severity.rank


def _new_breaches(checks: pd.DataFrame | None, before: pd.DataFrame | None) -> pd.DataFrame:
    """Breaches of ``checks`` not already breached in ``before`` (same customer and covenant)."""
    if checks is None or checks.empty:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    now = checks.loc[checks["breached"].astype(bool)]
    if before is None or before.empty:
        return now
    old = before.loc[before["breached"].astype(bool), ["customer_id", "covenant"]]
    keys = pd.MultiIndex.from_frame(now[["customer_id", "covenant"]])
    return now.loc[~keys.isin(pd.MultiIndex.from_frame(old))]


def _breach_texts(breaches: pd.DataFrame) -> pd.Series:
    if breaches.empty:
        return pd.Series(dtype=object)
    return breaches.apply(breach_text, axis=1)


def customer_statuses(ids: pd.Index | pd.Series, statuses: pd.Series | None) -> np.ndarray:
    """Each customer's status, ``normal`` when none is given.

    Raises:
        MonitoringError: naming a status that is not a customer status.
    """
    if statuses is None:
        return np.full(len(ids), CUSTOMER_STATUSES[0], dtype=object)
    unknown = sorted(set(statuses.astype(str)) - set(CUSTOMER_STATUSES))
    if unknown:
        raise MonitoringError(f"unknown customer status(es) {unknown}; known: {CUSTOMER_STATUSES}")
    return statuses.reindex(pd.Index(ids)).fillna(CUSTOMER_STATUSES[0]).to_numpy(dtype=object)


def early_warnings(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    schedule: pd.DataFrame,
    reasons: pd.Series,
    config: WarningConfig | None = None,
    *,
    covenants: pd.DataFrame | None = None,
    previous_covenants: pd.DataFrame | None = None,
    measures: pd.DataFrame | None = None,
    statuses: pd.Series | None = None,
) -> pd.DataFrame:
    """The early-warning list: one row per customer with merged triggers, severity and action.

    Args:
        current: current ratings (`monitoring.store.RATING_COLUMNS`).
        previous: the previous run's ratings, or None (then grade and tier moves and new
            defaults cannot trigger).
        schedule: the review schedule of the current run.
        reasons: customer id -> reason text of the current rating.
        config: trigger severities, escalation and actions.
        covenants: covenant checks at the run date (`monitoring.covenants.CHECK_COLUMNS`).
        previous_covenants: the checks at the previous run's date; breaches found there are
            not news (None: every breach is).
        measures: active emergency measures per customer (`MEASURE_COLUMNS`); none by default.
        statuses: customer id -> current status (`monitoring.config.CUSTOMER_STATUSES`);
            ``normal`` when absent.

    Returns:
        Columns `WARNING_COLUMNS` (``triggers`` ``;``-joined codes, ``details`` one line per
        trigger), most severe first, then most triggers, then highest PD, then customer id.
    """
    config = config or WarningConfig()
    cur = current.set_index("customer_id")
    ids = cur.index
    prev = _previous(previous, ids)
    known = prev["known"]
    in_default = cur["in_default"].astype(bool).to_numpy()
    live = ~in_default
    rank = cur["tier_rank"].to_numpy(dtype=np.int64)
    grade_index = cur["grade_index"].to_numpy(dtype=np.int64)
    notches = np.where(known, grade_index - prev["grade_index"], 0)
    by_schedule = schedule.set_index("customer_id").reindex(ids)
    overdue = by_schedule["overdue"].astype("boolean").fillna(False).to_numpy(bool)
    days_overdue = by_schedule["days_overdue"].fillna(0).to_numpy(dtype=np.int64)
    hard = cur["hard_rules"].astype(str).str.len().to_numpy() > 0
    high, restricted = Tier.HIGH.rank, Tier.RESTRICTED.rank

    breaches = _new_breaches(covenants, previous_covenants)
    is_reporting = breaches["covenant"].astype(str) == Covenant.REPORTING_MONTHS.value
    ratio, reporting = breaches.loc[~is_reporting], breaches.loc[is_reporting]
    active = measures if measures is not None else no_measures()

    fired = {
        Trigger.GRADE_DROP: known & (notches >= config.grade_notches),
        Trigger.ENTERED_HIGH: known & (prev["rank"] < high) & (rank == high),
        Trigger.ENTERED_RESTRICTED: known & (prev["rank"] < restricted) & (rank == restricted),
        Trigger.HARD_RULE: hard & live & ~prev["hard"],
        Trigger.NEW_DEFAULT: known & in_default & ~prev["default"],
        Trigger.COVENANT_BREACH: ids.isin(ratio["customer_id"]) & live
        if len(ratio)
        else ~live & live,
        Trigger.REPORTING_OVERDUE: ids.isin(reporting["customer_id"]) & live
        if len(reporting)
        else ~live & live,
        Trigger.REVIEW_OVERDUE: overdue & live,
        Trigger.MEASURE: ids.isin(active["customer_id"]) & live,
    }
    texts = {
        Trigger.COVENANT_BREACH: _lines(ratio, ids, _breach_texts(ratio)),
        Trigger.REPORTING_OVERDUE: _lines(reporting, ids, _breach_texts(reporting)),
        Trigger.MEASURE: _lines(
            active, ids, active["measure_id"].astype(str) + ": " + active["reason"].astype(str)
        ),
    }
    fired = {t: mask for t, mask in fired.items() if config.severities[t] is not None}
    listed = np.zeros(len(ids), dtype=bool)
    for mask in fired.values():
        listed |= mask
    listed &= ~prev["default"]
    rows = np.flatnonzero(listed)

    status = customer_statuses(ids, statuses)
    grade = cur["grade"].astype(str).to_numpy()
    tier = cur["tier"].astype(str).to_numpy()
    levels = list(Severity)
    triggers, details, severities, actions, proposals, counts = [], [], [], [], [], []
    for i in rows:
        hit = [t for t, mask in fired.items() if mask[i]]
        ranks = [_rank(config.severities[t]) for t in hit]
        level = max(ranks)
        serious = sum(r >= config.escalate_from.rank for r in ranks)
        if serious >= config.escalate_triggers and level < Severity.HIGH.rank:
            level += 1
        severity = levels[level]
        action = config.actions[severity]
        target = ACTION_STATUS[action]
        propose = level >= config.propose_status_from.rank and CUSTOMER_STATUSES.index(
            target
        ) > CUSTOMER_STATUSES.index(str(status[i]))
        lines = []
        for t in hit:
            if t is Trigger.GRADE_DROP:
                lines.append(f"grade {prev['grade'][i]}→{grade[i]} ({notches[i]} notches)")
            elif t in (Trigger.ENTERED_HIGH, Trigger.ENTERED_RESTRICTED):
                lines.append(f"tier {prev['tier'][i]}→{tier[i]}")
            elif t is Trigger.HARD_RULE:
                lines.append(f"hard rule {cur['hard_rules'].iloc[i]}")
            elif t is Trigger.NEW_DEFAULT:
                lines.append("defaulted since the previous run")
            elif t is Trigger.REVIEW_OVERDUE:
                lines.append(f"review overdue {days_overdue[i]} days")
            else:
                lines.append(str(texts[t][i]))
        triggers.append(";".join(t.value for t in hit))
        details.append("; ".join(lines))
        severities.append(severity.value)
        actions.append(action.value)
        proposals.append(target if propose else None)
        counts.append((level, len(hit)))
    table = pd.DataFrame(
        {
            "customer_id": ids[rows].to_numpy(),
            "industry": cur["industry"].to_numpy()[rows],
            "region": cur["region"].to_numpy()[rows],
            "size_class": cur["size_class"].to_numpy()[rows],
            "previous_grade": prev["grade"][rows],
            "grade": grade[rows],
            "grade_notches": notches[rows],
            "previous_tier": prev["tier"][rows],
            "tier": tier[rows],
            "pd": cur["pd"].to_numpy()[rows],
            "status": status[rows],
            "severity": severities,
            "action": actions,
            "proposed_status": proposals,
            "triggers": triggers,
            "details": details,
            "reasons": pd.Series(reasons).reindex(ids[rows]).fillna("").to_numpy(),
            "next_review": by_schedule["next_review"].to_numpy()[rows],
        },
        columns=WARNING_COLUMNS,
    )
    table["_level"] = [c[0] for c in counts]
    table["_hits"] = [c[1] for c in counts]
    return (
        table.sort_values(
            ["_level", "_hits", "pd", "customer_id"], ascending=[False, False, False, True]
        )
        .drop(columns=["_level", "_hits"])
        .reset_index(drop=True)
    )


def action_counts(warnings: pd.DataFrame) -> dict[str, int]:
    """Early warnings per action, most severe first (zeros kept)."""
    counts = warnings["action"].value_counts()
    return {a.value: int(counts.get(a.value, 0)) for a in sorted(Action, key=lambda a: -a.severity)}


def severity_counts(warnings: pd.DataFrame) -> dict[str, int]:
    """Early warnings per severity, most severe first (zeros kept)."""
    counts = warnings["severity"].value_counts()
    return {s.value: int(counts.get(s.value, 0)) for s in sorted(Severity, key=lambda s: -s.rank)}
