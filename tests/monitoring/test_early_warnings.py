"""The early-warning list: one row per customer, merged triggers, severity, action, status."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from monitoring.config import MonitoringError, WarningConfig
from monitoring.covenants import CHECK_COLUMNS
from monitoring.segments import SEGMENT_COLUMNS, segment_table
from monitoring.warnings import WARNING_COLUMNS, early_warnings, review_schedule
from rating.policy import RatingPolicy
from tests.monitoring.test_units import _ratings

AS_OF = date(2025, 12, 31)
PREVIOUS = _ratings(
    [
        {"customer_id": c, "pd": 0.003, "grade": "3", "grade_index": 2, "tier": "low"}
        for c in ("calm", "late", "breach", "drop", "both", "rule", "old_rule", "measured")
    ]
)


def _current() -> pd.DataFrame:
    rows = {
        c: {"pd": 0.003, "grade": "3", "grade_index": 2, "tier": "low"}
        for c in PREVIOUS["customer_id"]
    }
    rows["drop"] = {"pd": 0.015, "grade": "5", "grade_index": 4, "tier": "medium"}
    rows["both"] = {"pd": 0.015, "grade": "5", "grade_index": 4, "tier": "medium"}
    rows["rule"] |= {"tier": "restricted", "hard_rules": "HR01"}
    rows["old_rule"] |= {"tier": "restricted", "hard_rules": "HR02"}
    return _ratings([{"customer_id": c, **r} for c, r in rows.items()])


def _checks(rows: list[tuple[str, str, float, float, bool]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "customer_id": c,
                "covenant": k,
                "threshold": t,
                "feature": "debt_ratio" if k == "max_debt_ratio" else "months_since_period_end",
                "observed": o,
                "breached": b,
                "days_past_reporting_due": 40 if k == "reporting_months" and b else 0,
                "effective_date": pd.Timestamp("2024-01-01"),
            }
            for c, k, t, o, b in rows
        ],
        columns=CHECK_COLUMNS,
    )
    return frame


def _schedule(current: pd.DataFrame) -> pd.DataFrame:
    reviews = pd.DataFrame(
        {
            "customer_id": list(current["customer_id"]),
            "review_date": pd.Timestamp("2025-10-01"),
            "outcome": "satisfactory",
            "next_review_date": pd.Timestamp("2026-03-01"),
        }
    )
    reviews.loc[reviews["customer_id"] == "late", "next_review_date"] = pd.Timestamp("2025-11-01")
    return review_schedule(
        current, pd.Series(dtype="datetime64[ns]"), RatingPolicy(), AS_OF, reviews
    )


def _warnings(**kwargs) -> pd.DataFrame:
    current = _current()
    previous = PREVIOUS.copy()
    old = previous["customer_id"] == "old_rule"
    previous.loc[old, ["hard_rules", "tier", "tier_rank"]] = ["HR02", "restricted", 3]
    checks = _checks(
        [
            ("breach", "max_debt_ratio", 0.8, 0.9, True),
            ("both", "max_debt_ratio", 0.8, 0.95, True),
            ("calm", "max_debt_ratio", 0.8, 0.5, False),
            ("calm", "reporting_months", 6, 7, False),
        ]
    )
    reasons = pd.Series("reason text", index=current["customer_id"])
    return early_warnings(
        current, previous, _schedule(current), reasons, covenants=checks, **kwargs
    )


def test_given_triggers_when_listed_then_one_row_per_customer_ranked_by_severity():
    measures = pd.DataFrame(
        {"customer_id": ["measured"], "measure_id": ["M1"], "reason": ["sector downturn"]}
    )
    warnings = _warnings(measures=measures)
    assert list(warnings.columns) == WARNING_COLUMNS
    assert warnings["customer_id"].is_unique
    by_id = warnings.set_index("customer_id")
    # Then a quiet customer and a hard rule already known at the previous run are not news
    assert "calm" not in by_id.index and "old_rule" not in by_id.index
    # And each trigger carries its severity and the action that severity proposes
    assert by_id.loc["rule", ["severity", "action"]].tolist() == ["critical", "exit"]
    assert by_id.loc["measured", ["severity", "action"]].tolist() == ["high", "suspend"]
    assert "M1: sector downturn" in by_id.loc["measured", "details"]
    assert by_id.loc["breach", ["severity", "action"]].tolist() == ["medium", "restrict"]
    assert "debt_ratio 0.9 breaches max 0.8" in by_id.loc["breach", "details"]
    assert by_id.loc["drop", "severity"] == "medium"
    # And an overdue review alone is low severity: watch, no status proposed
    assert by_id.loc["late", ["severity", "action"]].tolist() == ["low", "watch"]
    assert by_id.loc["late", "triggers"] == "review_overdue"
    assert by_id.loc["late", "details"] == "review overdue 60 days"
    assert pd.isna(by_id.loc["late", "proposed_status"])
    # And two serious triggers together escalate one level, merged on one row
    assert by_id.loc["both", "triggers"] == "grade_drop;covenant_breach"
    assert by_id.loc["both", ["severity", "action"]].tolist() == ["high", "suspend"]
    # And the list runs from the most severe down
    rank = {"critical": 3, "high": 2, "medium": 1, "low": 0}
    assert warnings["severity"].map(rank).is_monotonic_decreasing
    assert warnings["customer_id"].iloc[0] == "rule" and warnings["customer_id"].iloc[-1] == "late"


def test_given_a_breach_known_at_the_previous_run_when_listed_then_not_again():
    current = _current()
    previous_checks = _checks([("breach", "max_debt_ratio", 0.8, 0.85, True)])
    now = _checks([("breach", "max_debt_ratio", 0.8, 0.9, True)])
    reasons = pd.Series("r", index=current["customer_id"])
    schedule = _schedule(current)
    args = (current, PREVIOUS, schedule, reasons)
    listed = early_warnings(*args, covenants=now, previous_covenants=previous_checks)
    assert "breach" not in set(listed["customer_id"])
    # A new breach is listed; a missing report is its own (low) trigger
    report = _checks([("calm", "reporting_months", 6, 14, True)])
    listed = early_warnings(*args, covenants=report).set_index("customer_id")
    assert listed.loc["calm", "triggers"] == "reporting_overdue"
    assert listed.loc["calm", "severity"] == "low"
    assert "40 days past due" in listed.loc["calm", "details"]


def test_given_current_statuses_when_action_proposes_then_only_stricter_transitions():
    statuses = pd.Series({"rule": "exiting", "breach": "normal", "both": "watch"})
    by_id = _warnings(statuses=statuses).set_index("customer_id")
    assert by_id.loc["rule", "status"] == "exiting" and pd.isna(
        by_id.loc["rule", "proposed_status"]
    )
    assert by_id.loc["breach", "proposed_status"] == "restricted"
    assert by_id.loc["both", "proposed_status"] == "suspended"
    assert by_id.loc["drop", "status"] == "normal"  # absent: normal
    with pytest.raises(MonitoringError, match="unknown customer status"):
        _warnings(statuses=pd.Series({"rule": "frozen"}))


def test_given_stricter_rules_in_config_when_listed_then_they_apply():
    config = WarningConfig(
        severities={**WarningConfig().severities, "review_overdue": None}, escalate_triggers=3
    )
    by_id = _warnings(config=config).set_index("customer_id")
    assert "late" not in by_id.index  # a null severity: the trigger is not used
    assert by_id.loc["both", "severity"] == "medium"  # two triggers no longer escalate
    with pytest.raises(ValueError, match="lacks trigger"):
        WarningConfig(severities={"grade_drop": "low"})


def test_given_recorded_reviews_when_scheduled_then_the_reviewers_date_counts():
    current = _ratings(
        [
            {"customer_id": "rev", "pd": 0.03, "grade": "6", "grade_index": 5, "tier": "high"},
            {"customer_id": "store", "pd": 0.03, "grade": "6", "grade_index": 5, "tier": "high"},
            {"customer_id": "new", "pd": 0.03, "grade": "6", "grade_index": 5, "tier": "high"},
        ]
    )
    reviews = pd.DataFrame(
        {
            "customer_id": ["rev", "rev", "rev"],
            "review_date": pd.to_datetime(["2025-01-10", "2025-07-01", "2026-02-01"]),
            "outcome": ["watch", "watch", "watch"],
            "next_review_date": pd.to_datetime(["2025-04-10", "2025-10-01", "2026-05-01"]),
        }
    )
    stored = pd.Series({"store": pd.Timestamp("2025-11-30")})
    schedule = review_schedule(current, stored, RatingPolicy(), AS_OF, reviews)
    by_id = schedule.set_index("customer_id")
    # The latest review known at the date (a later one is not known yet) and its next date
    assert by_id.loc["rev", "last_review"] == pd.Timestamp("2025-07-01")
    assert by_id.loc["rev", "next_review"] == pd.Timestamp("2025-10-01")
    assert by_id.loc["rev", "days_overdue"] == 91
    # Without a recorded next date: last review plus the tier's frequency (high: 90 days)
    assert by_id.loc["store", "next_review"] == pd.Timestamp("2026-02-28")
    assert not by_id.loc["store", "overdue"]
    # Never reviewed: the first rating counts as the review
    assert by_id.loc["new", "last_review"] == pd.Timestamp(AS_OF)


def test_given_ratings_and_warnings_when_by_segment_then_counts_add_up():
    current = _current()
    current.loc[current["customer_id"].isin(["rule", "old_rule"]), "industry"] = "construction"
    warnings = _warnings()
    statuses = pd.Series({"rule": "suspended"})
    table = segment_table(current, PREVIOUS, warnings, statuses)
    assert list(table.columns) == SEGMENT_COLUMNS
    for dimension in ("industry", "region", "size_class"):
        rows = table[table["dimension"] == dimension]
        assert rows["customers"].sum() == len(current)
        assert rows["warnings"].sum() == len(warnings)
    industry = table[table["dimension"] == "industry"].set_index("segment")
    assert industry.loc["construction", "tier_restricted"] == 2
    assert industry.loc["construction", "status_suspended"] == 1
    assert industry.loc["construction", "downgrades"] == 2
    assert industry.loc["retail", "downgrades"] == 2  # drop and both: low -> medium
    assert industry.loc["retail", "status_normal"] == len(current) - 2
    assert industry.loc["construction", "warnings_high"] == 1  # rule (critical)
