"""Benchmark the feature pipelines: online cost per customer and batch cost per portfolio.

* online: wall time (median, p99) of ``compute_feature_row`` for one customer holding 3 years of
  quarterly statements, 5 facilities x 36 instalments and 3,000 transactions, from polars frames
  (what ``serving.engine.request_frames`` builds) to a numpy row, one polars thread; the
  per-step costs; ``compute_features`` with pandas in and out for reference; and the same
  transaction aggregates written for plain polars, narwhals-on-polars, DuckDB and numpy.
  The machine is shared: the load average is recorded and CPU time is reported next to wall.
* batch: all features at one snapshot for 10k and 100k customers (1M with ``--full``: the
  portfolio in ``benchmarks/data/raw_1m``, made once by ``riskgrade generate --customers 1000000
  --seed 1``), each size in a child process: ``compute_features_chunked`` (Parquet scan per
  range of 100k customer ids, wall time, peak RSS). In a second child, range by range over the
  same rows, the transaction group (polars) against a plain pandas groupby implementation of
  the same transaction features; the ratio of their summed times is ``speedup_vs_pandas``.

Writes ``benchmarks/results/features.json``.
Usage: uv run python benchmarks/bench_features.py [--full] [--sizes 10000 100000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
DATA = ROOT / "data"
RESULTS = ROOT / "results" / "features.json"
AS_OF = date(2024, 12, 31)


# --- online ------------------------------------------------------------------------------------
def one_customer(seed: int = 0):
    from features.io import RawTables
    from features.schema import SCHEMAS

    rng = np.random.default_rng(seed)
    cid = "C0000001"
    customers = pd.DataFrame(
        {
            "customer_id": [cid],
            "industry": ["manufacturing"],
            "region": ["east"],
            "size_class": ["small"],
            "legal_form": ["limited"],
            "founded_date": pd.to_datetime(["2005-01-01"]),
            "onboarding_date": pd.to_datetime(["2015-01-01"]),
            "sanctions_hit": [False],
            "legal_enforcement": [False],
            "fraud": [False],
        }
    )
    ends = pd.date_range(end="2024-09-30", periods=12, freq="QE")
    n = len(ends)
    assets = rng.uniform(1e7, 2e7, n)
    statements = pd.DataFrame(
        {
            "customer_id": cid,
            "period_end": ends,
            "published_date": ends + pd.Timedelta(days=45),
            "period_months": 3,
            "audited": True,
            "total_assets": assets,
            "total_liabilities": assets * rng.uniform(0.3, 0.8, n),
            "current_assets": assets * 0.4,
            "current_liabilities": assets * rng.uniform(0.1, 0.3, n),
            "cash": assets * 0.05,
            "revenue": rng.uniform(2e6, 4e6, n),
            "operating_costs": rng.uniform(1.5e6, 3.5e6, n),
            "net_income": rng.normal(2e5, 1e5, n),
            "operating_cash_flow": rng.normal(2e5, 1e5, n),
            "interest_expense": rng.uniform(1e4, 5e4, n),
        }
    )
    facilities = pd.DataFrame(
        {
            "facility_id": [f"F{i}" for i in range(5)],
            "customer_id": cid,
            "facility_type": "term_loan",
            "currency": "CNY",
            "opened": pd.to_datetime(["2022-06-15"] * 5),
            "maturity_date": pd.to_datetime(["2025-06-15"] * 5),
            "limit": 1e6,
            "outstanding": 5e5,
        }
    )
    parts = []
    for i in range(5):
        due = pd.date_range("2022-07-15", periods=36, freq="MS") + pd.Timedelta(days=14)
        paid = due + pd.to_timedelta(rng.integers(0, 40, 36), unit="D")
        known = paid <= pd.Timestamp(AS_OF)
        parts.append(
            pd.DataFrame(
                {
                    "facility_id": f"F{i}",
                    "customer_id": cid,
                    "instalment_no": np.arange(1, 37),
                    "due_date": due,
                    "amount_due": 3e4,
                    "paid_date": paid.where(known),
                    "amount_paid": np.where(known, 3e4, 0.0),
                }
            )
        )
    m = 3000
    transactions = pd.DataFrame(
        {
            "txn_id": [f"T{i}" for i in range(m)],
            "customer_id": cid,
            "ts": pd.Timestamp("2022-01-01")
            + pd.to_timedelta(rng.uniform(0, 3 * 365 * 86400, m).astype("int64"), unit="s"),
            "amount": rng.lognormal(9, 1, m).round(2),
            "direction": rng.choice(["in", "out"], m),
            "counterparty_id": rng.choice([f"P{i}" for i in range(40)], m),
            "channel": "wire",
        }
    )
    defaults = pd.DataFrame({"customer_id": [], "default_date": [], "default_type": []})
    tables = {
        "customers": customers,
        "financial_statements": statements,
        "credit_facilities": facilities,
        "repayments": pd.concat(parts, ignore_index=True),
        "transactions": transactions,
        "defaults": defaults,
    }
    return RawTables(**{k: SCHEMAS[k].validate(v) for k, v in tables.items()})


def _timings_ms(fn, repeat: int = 500, clock=time.perf_counter) -> list[float]:
    for _ in range(30):
        fn()
    times = []
    for _ in range(repeat):
        started = clock()
        fn()
        times.append((clock() - started) * 1e3)
    return sorted(times)


def _median_ms(fn, repeat: int = 300) -> float:
    return round(statistics.median(_timings_ms(fn, repeat)), 3)


def _txn_subset_polars(tx: pd.DataFrame):
    import polars as pl

    from features.groups.common import end_of_day, months_back

    frame = pl.DataFrame(
        {
            "customer_id": tx["customer_id"].to_numpy(object),
            "ts": tx["ts"].to_numpy(),
            "amount": tx["amount"].to_numpy(),
            "is_in": (tx["direction"] == "in").to_numpy(),
        }
    )
    month = months_back("ts", AS_OF)
    rows = frame.filter((pl.col("ts") < end_of_day(AS_OF)) & (month < 12)).select(
        "customer_id",
        month.alias("m"),
        pl.when(pl.col("is_in")).then(pl.col("amount")).otherwise(0.0).alias("i"),
        pl.when(pl.col("is_in")).then(0.0).otherwise(pl.col("amount")).alias("o"),
    )
    monthly = rows.group_by("customer_id", "m").agg(pl.col("i").sum(), pl.col("o").sum())
    return monthly.group_by("customer_id").agg(
        *(pl.col("i").filter(pl.col("m") < n).sum().alias(f"i{n}") for n in (1, 3, 12)),
        *(pl.col("o").filter(pl.col("m") < n).sum().alias(f"o{n}") for n in (1, 3, 12)),
        ((pl.col("i") ** 2).sum() / 12 - (pl.col("i").sum() / 12) ** 2).sqrt().alias("sd"),
    )


def _txn_subset_narwhals(tx: pd.DataFrame):
    import narwhals as nw
    import polars as pl

    frame = nw.from_native(
        pl.DataFrame(
            {
                "customer_id": tx["customer_id"].to_numpy(object),
                "ts": tx["ts"].to_numpy(),
                "amount": tx["amount"].to_numpy(),
                "is_in": (tx["direction"] == "in").to_numpy(),
            }
        )
    )
    ts = nw.col("ts")
    month = (AS_OF.year * 12 + AS_OF.month) - (ts.dt.year() * 12 + ts.dt.month())
    rows = frame.with_columns(m=month).filter(nw.col("m") < 12, nw.col("m") >= 0)
    rows = rows.with_columns(
        i=nw.when(nw.col("is_in")).then(nw.col("amount")).otherwise(0.0),
        o=nw.when(nw.col("is_in")).then(0.0).otherwise(nw.col("amount")),
    )
    monthly = rows.group_by("customer_id", "m").agg(nw.col("i").sum(), nw.col("o").sum())
    monthly = monthly.with_columns(
        **{f"i{n}": nw.when(nw.col("m") < n).then(nw.col("i")).otherwise(0.0) for n in (1, 3)},
        **{f"o{n}": nw.when(nw.col("m") < n).then(nw.col("o")).otherwise(0.0) for n in (1, 3)},
        i2=nw.col("i") ** 2,
    )
    out = monthly.group_by("customer_id").agg(nw.col("i1", "i3", "i", "o1", "o3", "o", "i2").sum())
    return out.to_native()


def _txn_subset_duckdb(tx: pd.DataFrame, con):
    sql = f"""
        with r as (
          select customer_id,
                 ({AS_OF.year * 12 + AS_OF.month} - (year(ts) * 12 + month(ts))
                   - case when day(ts) > 31 then 1 else 0 end) as m,
                 case when direction = 'in' then amount else 0 end as i,
                 case when direction = 'in' then 0 else amount end as o
          from tx where ts < timestamp '{AS_OF.isoformat()}' + interval 1 day),
        mm as (select customer_id, m, sum(i) i, sum(o) o from r where m < 12 group by all)
        select customer_id,
               sum(i) filter (where m < 1) i1, sum(i) filter (where m < 3) i3, sum(i) i12,
               sum(o) filter (where m < 1) o1, sum(o) filter (where m < 3) o3, sum(o) o12,
               sqrt(greatest(sum(i * i) / 12 - pow(sum(i) / 12, 2), 0)) sd
        from mm group by all"""
    return con.execute(sql).df()


def _txn_subset_numpy(tx: pd.DataFrame) -> dict[str, float]:
    ts = tx["ts"].to_numpy()
    days = ts.astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(int) + 1970
    months = days.astype("datetime64[M]").astype(int) % 12 + 1
    m = (AS_OF.year * 12 + AS_OF.month) - (years * 12 + months)
    keep = (ts < np.datetime64(AS_OF) + np.timedelta64(1, "D")) & (m < 12)
    m, amount = m[keep], tx["amount"].to_numpy()[keep]
    is_in = (tx["direction"].to_numpy() == "in")[keep]
    inflow = np.bincount(m, weights=np.where(is_in, amount, 0.0), minlength=12)
    outflow = np.bincount(m, weights=np.where(is_in, 0.0, amount), minlength=12)
    out = {f"i{n}": inflow[:n].sum() for n in (1, 3, 12)}
    out |= {f"o{n}": outflow[:n].sum() for n in (1, 3, 12)}
    out["sd"] = float(inflow.std())
    return out


def run_online() -> dict[str, object]:
    import duckdb
    import polars as pl

    from features.catalog import (
        GROUPS,
        _finishing,
        compute_feature_row,
        compute_features,
        compute_features_pl,
    )
    from features.groups.common import FeatureConfig, to_frames

    raw = one_customer()
    frames = to_frames(raw)  # the same frames serving.engine.request_frames builds
    config = FeatureConfig()
    tx = raw.transactions
    con = duckdb.connect()
    con.execute("set threads=1")
    con.register("tx", tx)
    wall = _timings_ms(lambda: compute_feature_row(frames, AS_OF), repeat=2000)
    cpu = _timings_ms(lambda: compute_feature_row(frames, AS_OF), 2000, time.process_time)
    parts = [frames.customers.select("customer_id")]
    parts += [g.aggregate(frames, AS_OF, config, by=()) for g in GROUPS.values()]
    side = pl.concat(parts, how="horizontal")
    finishing = _finishing(AS_OF, config)
    result = {
        "rows": raw.row_counts(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "feature_row_ms": {
            "median": round(statistics.median(wall), 3),
            "p99": round(wall[int(0.99 * len(wall))], 3),
            "cpu_median": round(statistics.median(cpu), 3),
            "repeat": len(wall),
        },
        "parts_ms": {
            **{
                f"aggregate_{g.value}": _median_ms(
                    lambda g=g: GROUPS[g].aggregate(frames, AS_OF, config, by=())
                )
                for g in GROUPS
            },
            "finish_select": _median_ms(lambda: side.select("customer_id", *finishing)),
            "compute_features_pl": _median_ms(lambda: compute_features_pl(frames, AS_OF)),
        },
        "pandas_in_out_ms": {
            "to_frames": _median_ms(lambda: to_frames(raw)),
            "compute_features": _median_ms(lambda: compute_features(raw, AS_OF)),
        },
        "engines_txn_subset_ms": {
            "polars_eager": _median_ms(lambda: _txn_subset_polars(tx)),
            "narwhals_on_polars": _median_ms(lambda: _txn_subset_narwhals(tx)),
            "duckdb": _median_ms(lambda: _txn_subset_duckdb(tx, con), repeat=100),
            "numpy": _median_ms(lambda: _txn_subset_numpy(tx)),
        },
        "target_ms": 3.0,
    }
    result["meets_target"] = result["feature_row_ms"]["median"] < 3.0
    return result


# --- batch -------------------------------------------------------------------------------------
def pandas_transaction_features(tx: pd.DataFrame, as_of: date, multiple: float = 5.0):
    """Plain pandas groupby implementation of the transaction features (the baseline)."""
    ts = tx["ts"]
    month_end = (pd.Timestamp(as_of) + pd.Timedelta(days=1)).day == 1
    as_of_day = 31 if month_end else as_of.day
    m = (as_of.year * 12 + as_of.month) - (ts.dt.year * 12 + ts.dt.month)
    m = m - (ts.dt.day > as_of_day).astype(int)
    keep = (ts < pd.Timestamp(as_of) + pd.Timedelta(days=1)) & (m < 12)
    t = tx.loc[keep, ["customer_id", "counterparty_id", "amount", "direction"]].copy()
    t["m"] = m[keep]
    is_in = t["direction"] == "in"
    t["inflow"] = t["amount"].where(is_in, 0.0)
    t["outflow"] = t["amount"].where(~is_in, 0.0)
    mean = t.groupby("customer_id")["amount"].transform("mean")
    t["large"] = t["amount"] >= multiple * mean
    monthly = t.groupby(["customer_id", "m"]).agg(
        inflow=("inflow", "sum"),
        outflow=("outflow", "sum"),
        n=("amount", "size"),
        large=("large", "sum"),
    )
    monthly = monthly.reset_index()
    for n, w in ((1, "1m"), (3, "3m"), (12, "12m")):
        monthly[f"inflow_{w}"] = monthly["inflow"].where(monthly["m"] < n, 0.0)
        monthly[f"outflow_{w}"] = monthly["outflow"].where(monthly["m"] < n, 0.0)
    monthly["inflow_sq"] = monthly["inflow"] ** 2
    monthly["active"] = monthly["inflow"] > 0
    per = monthly.groupby("customer_id").agg(
        **{c: (c, "sum") for c in monthly.columns if c.startswith(("inflow_", "outflow_"))},
        active_months_12m=("active", "sum"),
        months=("m", "size"),
        n=("n", "sum"),
        large=("large", "sum"),
    )
    cp = t[t["inflow"] > 0].groupby(["customer_id", "counterparty_id"])["inflow"].sum()
    conc = cp.groupby(level=0).agg(["sum", "max", lambda s: (s**2).sum()])
    conc.columns = ["cp_total", "cp_max", "cp_sq"]
    out = per.join(conc, how="left")
    for w in ("1m", "3m", "12m"):
        out[f"netflow_{w}"] = out[f"inflow_{w}"] - out[f"outflow_{w}"]
    mu = out["inflow_12m"] / 12
    out["inflow_cv_12m"] = np.sqrt((out["inflow_sq"] / 12 - mu**2).clip(lower=0)) / mu
    out["inflow_trend"] = (out["inflow_3m"] / 3) / ((out["inflow_12m"] - out["inflow_3m"]) / 9)
    out["dormant_months_12m"] = 12 - out["months"]
    out["inflow_hhi_12m"] = out["cp_sq"] / out["cp_total"] ** 2
    out["top1_inflow_share_12m"] = out["cp_max"] / out["cp_total"]
    out["large_txn_share_12m"] = out["large"] / out["n"]
    return out


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _row_counts(raw_dir: Path) -> dict[str, int]:
    import polars as pl

    return {
        path.stem: pl.scan_parquet(path).select(pl.len()).collect().item()
        for path in sorted(raw_dir.glob("*.parquet"))
    }


def run_batch(customers: int, raw_dir: Path, chunk: int) -> dict[str, object]:
    from features.catalog import compute_features_chunked

    started = time.perf_counter()
    features = compute_features_chunked(raw_dir, AS_OF, chunk_customers=chunk)
    wall = time.perf_counter() - started
    return {
        "customers": customers,
        "rows": _row_counts(raw_dir),
        "feature_rows": features.height,
        "chunk_customers": chunk,
        "compute_features_chunked_s": round(wall, 2),
        "peak_rss_mb": _rss_mb(),
    }


def run_baseline(customers: int, raw_dir: Path, chunk: int) -> dict[str, object]:
    import polars as pl

    from features.groups import transactions
    from features.groups.common import (
        FeatureConfig,
        customer_chunks,
        read_customer_ids,
        read_frames,
    )

    ours_s = pandas_s = 0.0
    rows = 0
    diff = 0.0
    config = FeatureConfig()
    for i, customer_range in enumerate(customer_chunks(read_customer_ids(raw_dir, AS_OF), chunk)):
        frames = read_frames(raw_dir, AS_OF, customers=customer_range)
        tx = frames.transactions.to_pandas()
        rows += len(tx)
        started = time.perf_counter()
        ours = transactions.compute(frames, AS_OF, config)
        ours_s += time.perf_counter() - started
        started = time.perf_counter()
        baseline = pandas_transaction_features(tx, AS_OF)
        pandas_s += time.perf_counter() - started
        if i == 0:
            sample = list(baseline.index[:500])
            check = ours.filter(pl.col("customer_id").is_in(sample)).sort("customer_id")
            expected = baseline.loc[check["customer_id"].to_list()]
            diff = max(
                float(np.nanmax(np.abs(check[c].to_numpy() - expected[c].to_numpy())))
                for c in ("inflow_12m", "inflow_cv_12m", "inflow_hhi_12m", "large_txn_share_12m")
            )
        del frames, tx, ours, baseline
    return {
        "transaction_rows_read": rows,
        "transactions_group_polars_s": round(ours_s, 3),
        "transactions_group_pandas_s": round(pandas_s, 3),
        "speedup_vs_pandas": round(pandas_s / ours_s, 2),
        "baseline_max_abs_diff": diff,
        "peak_rss_mb_baseline_child": _rss_mb(),
    }


def _child(args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    if args[0] == "online":
        env["POLARS_MAX_THREADS"] = "1"
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="also run 1,000,000 customers")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    parser.add_argument("--chunk", type=int, default=100_000, help="customers per range")
    parser.add_argument("--no-online", action="store_true", help="skip the online part")
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "online":
            print(json.dumps(run_online()))
        else:
            measure = run_batch if kind == "batch" else run_baseline
            print(json.dumps(measure(int(rest[0]), Path(rest[1]), int(rest[2]))))
        return
    from features.synthetic import GeneratorConfig, generate

    sizes = args.sizes or ([10_000, 100_000] + ([1_000_000] if args.full else []))
    report: dict[str, Any] = {
        "benchmark": "features",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "as_of": AS_OF.isoformat(),
        "online": None if args.no_online else _child(["online"]),
        "batch": [],
    }
    print(json.dumps(report["online"], indent=2))
    for customers in sizes:
        if customers == 1_000_000:
            raw_dir, keep = DATA / "raw_1m", True  # made once: riskgrade generate ... --seed 1
            if not raw_dir.exists():
                generate(GeneratorConfig(customers=customers, seed=1), raw_dir)
        else:
            raw_dir, keep = DATA / f"features_{customers}", args.keep
            if not raw_dir.exists():
                generate(GeneratorConfig(customers=customers, seed=42), raw_dir)
        chunk = str(args.chunk)
        run = _child(["batch", str(customers), str(raw_dir), chunk])
        run |= _child(["baseline", str(customers), str(raw_dir), chunk])
        run["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        run["meets_target"] = customers < 1_000_000 or (
            run["compute_features_chunked_s"] < 180 and run["peak_rss_mb"] < 8192
        )
        print(json.dumps(run, indent=2))
        report["batch"].append(run)
        if not keep:
            shutil.rmtree(raw_dir, ignore_errors=True)
    # Sizes not run this time (e.g. 1M without --full) keep their last measurement.
    if RESULTS.exists():
        previous = json.loads(RESULTS.read_text())
        done = {run["customers"] for run in report["batch"]}
        kept = [run for run in previous.get("batch", []) if run["customers"] not in done]
        report["batch"] = sorted(
            [*kept, *report["batch"]],
            key=lambda run: run["customers"],
        )
        if report["online"] is None:
            report["online"] = previous.get("online")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
