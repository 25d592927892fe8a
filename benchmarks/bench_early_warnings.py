"""Benchmark the early-warning list on a sample portfolio with known outcomes.

A generated portfolio (default 5,000 customers, seed 42) with its relationship records
(reviews on the tier's schedule, covenants for part of the portfolio) gets a real model trained
out of time on the year-end snapshots 2020-2022 (labels end 2023-12-31). Monitoring then runs
every quarter from 2023-06-30 to 2024-12-31; each run from 2023-09-30 on is compared with the
previous quarter and measured against the defaults of the 12 months after it (2024-2025, after
every training label). Severity rules and thresholds are those of params.yaml, set from the
policy and not fitted on these outcomes.

Measured per run and pooled over runs: listed performing customers per 1,000 performing
customers (``warnings_per_1000``), and the lift (12-month default rate of listed performing
customers over that of all performing customers); also by severity and by trigger. Two review
regimes: ``on_schedule`` (every review on time: the goal's condition) and ``sample`` (the
generator's default: a few neglected relationships review late).

Writes ``benchmarks/results/early_warnings.json``.
Usage: uv run python benchmarks/bench_early_warnings.py [--customers 5000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from features.build import DatasetConfig, build_dataset  # noqa: E402
from features.synthetic import GeneratorConfig, generate_with_records  # noqa: E402
from monitoring.config import Severity, Trigger  # noqa: E402
from monitoring.run import run_monitoring  # noqa: E402
from riskgrade.config import load_params  # noqa: E402
from training.config import LgbmConfig, RegistryConfig, SplitConfig, TrainConfig  # noqa: E402
from training.pipeline import train_dataset  # noqa: E402

RUNS = [
    date(2023, 6, 30),
    date(2023, 9, 30),
    date(2023, 12, 31),
    date(2024, 3, 31),
    date(2024, 6, 30),
    date(2024, 9, 30),
    date(2024, 12, 31),
]
HORIZON_DAYS = 365


def _outcome(ratings: pd.DataFrame, defaults: pd.DataFrame, as_of: date) -> pd.Series:
    """Performing customers at ``as_of`` -> defaulted within the next 12 months."""
    performing = ratings.loc[~ratings["in_default"].astype(bool), "customer_id"]
    start, end = pd.Timestamp(as_of), pd.Timestamp(as_of) + pd.Timedelta(days=HORIZON_DAYS)
    dates = pd.to_datetime(defaults["default_date"])
    hit = set(defaults.loc[(dates > start) & (dates <= end), "customer_id"])
    return pd.Series(performing.isin(hit).to_numpy(), index=performing.to_numpy())


def _rate(outcome: pd.Series, ids: pd.Index) -> tuple[int, float | None]:
    chosen = outcome.reindex(ids).dropna()
    return len(chosen), (float(chosen.mean()) if len(chosen) else None)


def _measure(listed: pd.DataFrame, outcome: pd.Series) -> dict[str, object]:
    base = float(outcome.mean())
    warned = listed[listed["customer_id"].isin(outcome.index)]
    n, rate = _rate(outcome, pd.Index(warned["customer_id"]))
    result: dict[str, object] = {
        "performing": len(outcome),
        "warned": n,
        "warnings_per_1000": 1000 * n / len(outcome),
        "base_default_rate": base,
        "warned_default_rate": rate,
        "lift": rate / base if rate is not None and base else None,
    }
    by_severity = {}
    for severity in Severity:
        rows = warned[warned["severity"] == severity.value]
        k, r = _rate(outcome, pd.Index(rows["customer_id"]))
        by_severity[severity.value] = {
            "per_1000": 1000 * k / len(outcome),
            "default_rate": r,
            "lift": r / base if r is not None and base else None,
        }
    by_trigger = {}
    for trigger in Trigger:
        rows = warned[warned["triggers"].str.split(";").map(lambda t, v=trigger.value: v in t)]
        k, r = _rate(outcome, pd.Index(rows["customer_id"]))
        alone = warned["triggers"] == trigger.value
        by_trigger[trigger.value] = {
            "per_1000": 1000 * k / len(outcome),
            "alone_per_1000": 1000 * int(alone.sum()) / len(outcome),
            "default_rate": r,
            "lift": r / base if r is not None and base else None,
        }
    result["by_severity"] = by_severity
    result["by_trigger"] = by_trigger
    return result


def _regime(raw, judgement, records, bundle, settings, tmp: Path, name: str) -> dict:
    store = tmp / f"{name}.duckdb"
    runs, pooled_lists, pooled_outcomes = {}, [], []
    for index, as_of in enumerate(RUNS):
        run = run_monitoring(
            raw,
            as_of,
            bundle,
            store,
            config=settings.monitoring,
            judgement=None,
            records=records,
            covenant_config=settings.covenants,
        )
        if index == 0:
            continue
        outcome = _outcome(run.ratings, raw.defaults, as_of)
        measured = _measure(run.warnings, outcome)
        measured["breached_covenants"] = int(run.covenants["breached"].sum())
        measured["covenants_checked"] = len(run.covenants)
        measured["listed_in_default"] = int(
            (~run.warnings["customer_id"].isin(outcome.index)).sum()
        )
        runs[as_of.isoformat()] = measured
        key = as_of.isoformat()
        pooled_lists.append(
            run.warnings.assign(customer_id=key + "/" + run.warnings["customer_id"])
        )
        pooled_outcomes.append(outcome.rename(index=lambda c, k=key: f"{k}/{c}"))
    pooled = _measure(pd.concat(pooled_lists), pd.concat(pooled_outcomes))
    return {"pooled": pooled, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    settings = load_params(ROOT.parent / "params.yaml")
    config = GeneratorConfig(customers=args.customers, seed=args.seed)
    spec = settings.rating.generator_spec()
    records_spec = settings.rating.records_spec(settings.covenants)
    regimes = {
        "on_schedule": records_spec.model_copy(update={"neglected_share": 0.0}),
        "sample": records_spec,
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        raw, _, judgement, records = generate_with_records(config, spec, regimes["on_schedule"])
        dataset = build_dataset(
            raw,
            DatasetConfig(first_snapshot=date(2020, 12, 31), last_snapshot=date(2022, 12, 31)),
        )
        dataset = dataset[pd.to_datetime(dataset["snapshot_date"]).dt.month == 12]
        train = TrainConfig(
            registry=RegistryConfig(enabled=False),
            show_progress=False,
            split=SplitConfig(test_snapshots=1, calibration_snapshots=1),
            lgbm=LgbmConfig(num_boost_round=300, learning_rate=0.05, early_stopping_rounds=50),
        )
        bundle = train_dataset(dataset, train, Path(tmp) / "model").bundle_dir
        for name, regime in regimes.items():
            if name != "on_schedule":
                _, _, judgement, records = generate_with_records(config, spec, regime)
            results[name] = _regime(raw, judgement, records, bundle, settings, Path(tmp), name)
    on_schedule = results["on_schedule"]["pooled"]
    result = {
        "warnings_per_1000": on_schedule["warnings_per_1000"],
        "lift": on_schedule["lift"],
        "goal": {"warnings_per_1000_below": 100, "lift_at_least": 3},
        "customers": args.customers,
        "seed": args.seed,
        "runs": [d.isoformat() for d in RUNS[1:]],
        "horizon_days": HORIZON_DAYS,
        "regimes": results,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = ROOT / "results" / "early_warnings.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {
        name: {k: r["pooled"][k] for k in ("warnings_per_1000", "lift", "warned", "performing")}
        for name, r in results.items()
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
