"""Benchmark the portfolio commands as a user runs them, beside their kernels from the same run.

Each command runs as a whole ``riskgrade`` process on a generated portfolio (a raw Parquet
folder, read only): ``validate``, ``features at``, ``features build``, ``score`` (with
reasons, policy and the rating chain) and ``monitor``. For each: wall time, CPU time and peak
RSS (``os.wait4`` of the child: its largest resident set), exit code, and the 1-minute load
average before and after (the machine may be shared: CPU time next to wall shows how much of
the wall was waiting for a core).

The kernels, each in a child process of its own, on the same folder and date:

* ``read``: every contract table read range by range into pandas (Parquet scan, no checks):
  the floor of ``validate``;
* ``features``: ``features.catalog.compute_features_chunked`` (Parquet scan per range of
  100k customer ids, no validation): the floor of ``features at``;
* ``score``: the same features, then ``RatingModel.score`` (one ``pred_contrib`` pass, PD,
  grade, tiers, hard rules, reasons) per range of 10k customers on every core, nothing
  written: the floor of ``score``.

``ratio`` is command / kernel (wall time), ``ratio_cpu`` the same in CPU time (the fairer one
on a loaded machine). Goals at 1M customers on 2 cores: validate and
features at < 2 min, score < 10 min, each < 8 GB, ratio < 1.5.

Writes ``benchmarks/results/portfolio_commands.json``: the commands measured are added to the
portfolio's entry (each result names its commit and load); ``--replace`` starts it afresh.
Usage: uv run python benchmarks/bench_portfolio_commands.py --raw /work/bigdata/p100k
         --bundle reports/bundle [--as-of 2025-12-31] [--commands validate score ...]
         [--timeout 3600] [--source DIR --source-commit SHA --label 100k-before]

``--source`` measures the commands of another source tree (a base commit unpacked with
``git archive``) in this environment: the before figures of a change, as the after ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(REPO))
RESULTS = ROOT / "results" / "portfolio_commands.json"
RIGRADE = Path(sys.executable).with_name("riskgrade")
COMMANDS = ("validate", "features at", "features build", "score", "monitor")
KERNEL_OF = {"validate": "read", "features at": "features", "score": "score", "monitor": "score"}


def command_line(name: str, raw: Path, as_of: str, bundle: Path, work: Path) -> list[str]:
    """The ``riskgrade`` arguments of one benchmarked command."""
    common = ["--raw", str(raw), "--as-of", as_of]
    lines = {
        "validate": ["validate", str(raw), "--as-of", as_of],
        "features at": ["features", "at", *common, "--out", str(work / "features.parquet")],
        "features build": ["features", "build", "--raw", str(raw), "--out", str(work / "dataset")],
        "score": ["score", *common, "--bundle", str(bundle), "--out", str(work / "scores.parquet")],
        "monitor": [
            "monitor",
            *common,
            "--bundle",
            str(bundle),
            "--store",
            str(work / "monitoring.duckdb"),
            "--out",
            str(work / "monitoring"),
        ],
    }
    return [str(RIGRADE), *lines[name]]


def run_measured(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one process to the end: wall, CPU, peak RSS (GB), exit code, loads, stderr tail."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                _, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.2)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 2),  # ru_maxrss is in KiB on Linux
        "exit_code": child.returncode,
        "timed_out": wall > timeout,
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        **({"stderr_tail": tail} if child.returncode not in (0,) else {}),
    }


# --- kernels, each run in a child process (``--kernel NAME``) ---------------------------------
def kernel_read(raw: Path, as_of: date) -> int:
    import polars as pl

    from features.chunks import CustomerRange, customer_ranges
    from features.io import table_path
    from features.schema import TABLES

    ids = pl.scan_parquet(table_path(raw, "customers")).select("customer_id").collect()
    ranges: list[CustomerRange] = customer_ranges(
        ids.get_column("customer_id").drop_nulls().unique().sort().to_list(), 10_000
    )
    rows = 0
    for where in ranges:
        for table in TABLES:
            frame = pl.scan_parquet(table_path(raw, table)).filter(where.expr()).collect()
            rows += len(frame.to_pandas())
    return rows


def kernel_features(raw: Path, as_of: date) -> int:
    from features.catalog import compute_features_chunked

    return compute_features_chunked(raw, as_of, chunk_customers=100_000).height


def kernel_score(raw: Path, as_of: date, bundle: Path) -> int:
    import numpy as np

    from features.catalog import FEATURE_SPEC, compute_features_pl
    from features.groups.common import customer_chunks, read_customer_ids, read_frames
    from rating.model import RatingModel

    model = RatingModel.load(bundle)
    threads = len(os.sched_getaffinity(0))
    flag_names = [f for f in model.policy.flag_names if f in FEATURE_SPEC.names]
    rows = 0
    for customers in customer_chunks(read_customer_ids(raw, as_of), 10_000):
        features = compute_features_pl(read_frames(raw, as_of, customers=customers), as_of)
        features = features.fill_null(float("nan"))
        x = np.ascontiguousarray(features.select(model.spec.names).to_numpy(), dtype=np.float64)
        flags = {f: features.get_column(f).to_numpy().astype(np.float64) for f in flag_names}
        rows += len(model.score(x, flags, num_threads=threads))
    return rows


def run_kernel(name: str, raw: Path, as_of: date, bundle: Path) -> None:
    if name == "read":
        rows = kernel_read(raw, as_of)
    elif name == "features":
        rows = kernel_features(raw, as_of)
    else:
        rows = kernel_score(raw, as_of, bundle)
    print(json.dumps({"rows": rows}))


def customers_of(raw: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(raw / "customers.parquet").metadata.num_rows)


def bundle_shape(bundle: Path) -> dict[str, Any]:
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(bundle / "model.txt"))
    dump = booster.dump_model()
    leaves = [tree["num_leaves"] for tree in dump["tree_info"]]
    return {
        "trees": booster.num_trees(),
        "features": booster.num_feature(),
        "mean_leaves": round(sum(leaves) / len(leaves), 1),
    }


def git_commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return found.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="raw Parquet folder (read only)")
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder")
    parser.add_argument("--as-of", default="2025-12-31")
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=COMMANDS)
    parser.add_argument("--no-kernels", action="store_true")
    parser.add_argument("--kernels-only", action="store_true", help="the kernels of --commands")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per process")
    parser.add_argument("--label", default=None, help="entry name (default: customers)")
    parser.add_argument("--note", default="", help="free text kept with the entry")
    parser.add_argument("--replace", action="store_true", help="drop the entry's old figures")
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="run the commands from this source tree instead (e.g. `git archive <base>` "
        "unpacked: the before figures of a change, same environment)",
    )
    parser.add_argument("--source-commit", default="", help="the commit of --source")
    parser.add_argument("--kernel", choices=("read", "features", "score"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    as_of = date.fromisoformat(args.as_of)
    raw, bundle = args.raw.resolve(), args.bundle.resolve()
    if args.kernel:
        run_kernel(args.kernel, raw, as_of, bundle)
        return
    customers = customers_of(raw)
    label = args.label or f"{customers}"
    scratch = ROOT / "data"  # git-ignored
    scratch.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_portfolio_", dir=scratch))
    entry: dict[str, Any] = {
        "customers": customers,
        "raw": str(raw),
        "as_of": args.as_of,
        "bundle": bundle_shape(bundle),
        "commit": args.source_commit if args.source else git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "python": platform.python_version(),
        },
        "note": args.note,
        "commands": {},
        "kernels": {},
    }
    try:
        kernels_needed = {KERNEL_OF[c] for c in args.commands if c in KERNEL_OF}
        for name in sorted(kernels_needed) if not args.no_kernels else ():
            argv = [sys.executable, __file__, "--raw", str(raw), "--bundle", str(bundle)]
            argv += ["--as-of", args.as_of, "--kernel", name]
            entry["kernels"][name] = run_measured(argv, REPO, args.timeout)
            entry["kernels"][name]["commit"] = entry["commit"]
            print(name, "kernel", entry["kernels"][name], flush=True)
        for name in args.commands if not args.kernels_only else ():
            argv = command_line(name, raw, args.as_of, bundle, work)
            if args.source:  # the other tree's code and params.yaml, this environment
                env = {**os.environ, "PYTHONPATH": str(args.source.resolve())}
                result = run_measured(argv, args.source.resolve(), args.timeout, env)
            else:
                result = run_measured(argv, REPO, args.timeout)
            result["commit"] = entry["commit"]
            result["argv"] = " ".join(["riskgrade", *argv[1:]]).replace(str(work), "<work>")
            entry["commands"][name] = result
            print(name, result, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    entry["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    portfolios = previous.get("portfolios", {})
    if label in portfolios and not args.replace:
        # measured in several sittings: keep the other commands' figures (each names its commit)
        for part in ("commands", "kernels"):
            entry[part] = {**portfolios[label].get(part, {}), **entry[part]}
        entry["note"] = entry["note"] or portfolios[label].get("note", "")
    for name, result in entry["commands"].items():  # against the kernels now in the entry
        kernel = entry["kernels"].get(KERNEL_OF.get(name, ""))
        if kernel and kernel["exit_code"] == 0 and result["exit_code"] in (0, 1):
            result["kernel"] = KERNEL_OF[name]
            result["ratio"] = round(result["wall_s"] / max(kernel["wall_s"], 0.1), 2)
            result["ratio_cpu"] = round(result["cpu_s"] / max(kernel["cpu_s"], 0.1), 2)
    portfolios[label] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "description": (
                    "whole riskgrade commands (wall, CPU, peak RSS of the process) beside "
                    "their kernels from the same run; ratio = command wall / kernel wall, "
                    "ratio_cpu the same in CPU time"
                ),
                "goals_at_1m": {
                    "validate_s": 120,
                    "features_at_s": 120,
                    "score_s": 600,
                    "peak_rss_gb": 8,
                    "ratio": 1.5,
                },
                "portfolios": portfolios,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
