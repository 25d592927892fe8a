"""Benchmark the Spark engine against polars on the same cores: features and batch scoring.

For each portfolio size (100k and 1M customers by default), four runs, each in its own process:

* polars features: ``compute_features_chunked`` (chunks of 100k customers), 2 polars threads;
* spark features: ``features.spark.engine.features_at`` (read Parquet, translated plan, write
  partitioned Parquet) on ``local[2]``;
* polars scoring: features then ``rate_features`` / ``chunk_table`` chunk by chunk (the
  ``riskgrade score`` path), 2 polars threads and 2 LightGBM threads for the SHAP pass;
* spark scoring: ``serving.spark_batch.score_to_parquet`` (features, ``mapInArrow`` rating with
  the shipped bundle, partitioned Parquet) on ``local[2]``.

Recorded per run: wall time, CPU time of the run's whole process tree (driver, JVM, Python
workers: the fair figure on a shared machine), peak RSS of the driver (the Python process, and
for Spark also the driver JVM, which in local mode holds the executor), load averages before
and after, and for Spark the jobs, stages and tasks the work split into (``StatusTracker``),
i.e. the units a cluster runs in parallel. Spark is expected to be slower on 2 local cores: it
pays for the JVM, shuffles and Arrow hand-offs that buy scale-out.

Each run is written into ``benchmarks/results/spark.json`` as soon as it finishes (other sizes
and parts keep their figures); ratios are computed only between runs of one invocation. One
size or part at a time: ``--sizes 1000000 --parts features --engines polars spark``. The
portfolios are ``/work/bigdata/p100k`` and ``p1m`` when present, else generated into
``benchmarks/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "spark.json"
AS_OF = date(2024, 12, 31)
CORES = 2
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "16",
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "10000",
    "spark.driver.memory": "4g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _tree_cpu_s(root: int | None = None) -> float:
    """CPU seconds (user + system) of a process and all its descendants, live or reaped.

    Under a loaded machine wall time measures the scheduler's share as much as the work; the
    CPU time of the whole tree (for Spark: driver, JVM, Python workers) does not. A live
    process's own ticks plus its reaped children's (``cutime``/``cstime``) are summed over the
    tree, so no process is counted twice.
    """
    root = os.getpid() if root is None else root
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])
        ticks[pid] = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    tree, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, ppid in parent.items() if ppid == current]
        tree.update(children)
        frontier.extend(children)
    return round(sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK"), 1)


def _jvm_peak_mb(spark: SparkSession) -> float | None:
    """Peak RSS (VmHWM) of the driver JVM started by this Python process."""
    gateway = getattr(spark.sparkContext, "_gateway", None)
    proc = getattr(gateway, "proc", None)
    if proc is None:
        return None
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def _work_split(spark: SparkSession, group: str) -> dict[str, object]:
    tracker = spark.sparkContext.statusTracker()
    jobs = tracker.getJobIdsForGroup(group)
    job_infos = [tracker.getJobInfo(j) for j in jobs]
    stages = [s for info in job_infos if info is not None for s in info.stageIds]
    infos = [tracker.getStageInfo(s) for s in stages]
    tasks = [info.numTasks for info in infos if info is not None]
    return {
        "jobs": len(jobs),
        "stages": len(tasks),
        "tasks": sum(tasks),
        "max_tasks_in_a_stage": max(tasks, default=0),
        "tasks_per_stage": tasks,
    }


def _session() -> SparkSession:
    from features.spark import SparkConfig
    from features.spark.engine import spark_session

    spark = spark_session(SparkConfig(conf=SPARK_CONF), f"local[{CORES}]")
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def run_polars_features(raw_dir: Path) -> dict[str, object]:
    from features.catalog import compute_features_chunked

    started = time.perf_counter()
    features = compute_features_chunked(raw_dir, AS_OF, chunk_customers=100_000)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": _tree_cpu_s(),
        "rows": features.height,
        "driver_peak_rss_mb": _rss_mb(),
    }


def run_spark_features(raw_dir: Path) -> dict[str, object]:
    from features.spark.engine import features_at

    started = time.perf_counter()
    spark = _session()
    session_s = time.perf_counter() - started
    spark.sparkContext.setJobGroup("features", "features")
    with tempfile.TemporaryDirectory() as out:
        rows = features_at(spark, str(raw_dir), AS_OF, str(Path(out) / "features"))
    wall = time.perf_counter() - started
    result = {
        "wall_s": round(wall, 2),
        "cpu_s": _tree_cpu_s(),
        "session_start_s": round(session_s, 2),
        "rows": rows,
        "driver_peak_rss_mb": _rss_mb(),
        "driver_jvm_peak_rss_mb": _jvm_peak_mb(spark),
        **_work_split(spark, "features"),
    }
    spark.stop()
    return result


def _bundle() -> Path:
    from bench_serving import bench_bundle

    target = DATA / "spark_bench_bundle"
    if not (target / "manifest.json").is_file():
        bench_bundle(target)
    return target


def run_polars_score(raw_dir: Path, bundle_dir: Path) -> dict[str, object]:
    from features.groups.common import read_frames
    from rating.model import RatingModel
    from rating.portfolio import chunk_table, iter_rated_chunks

    started = time.perf_counter()
    model = RatingModel.load(bundle_dir)
    frames = read_frames(raw_dir, AS_OF)
    rows = 0
    # The SHAP pass on every core, as ``riskgrade score`` runs it (serving.batch.score_to_file).
    chunks = iter_rated_chunks(frames, AS_OF, model, chunk_size=10_000, num_threads=CORES)
    for chunk in chunks:
        rows += len(chunk_table(chunk, AS_OF, model))
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": _tree_cpu_s(),
        "rows": rows,
        "driver_peak_rss_mb": _rss_mb(),
    }


def run_spark_score(raw_dir: Path, bundle_dir: Path) -> dict[str, object]:
    from serving.spark_batch import score_to_parquet

    started = time.perf_counter()
    spark = _session()
    spark.sparkContext.setJobGroup("score", "score")
    with tempfile.TemporaryDirectory() as out:
        counts = score_to_parquet(spark, str(raw_dir), AS_OF, bundle_dir, str(Path(out) / "s"))
    result = {
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": _tree_cpu_s(),
        "rows": int(counts["customers"].sum()),
        "driver_peak_rss_mb": _rss_mb(),
        "driver_jvm_peak_rss_mb": _jvm_peak_mb(spark),
        **_work_split(spark, "score"),
    }
    spark.stop()
    return result


RUNS: dict[str, Callable[..., dict[str, object]]] = {
    "polars_features": run_polars_features,
    "spark_features": run_spark_features,
    "polars_score": run_polars_score,
    "spark_score": run_spark_score,
}

BIGDATA = Path("/work/bigdata")
"""Shared generated portfolios (``p100k``, ``p1m``), used when present."""


def _child(kind: str, *args: str) -> dict[str, object]:
    env = {**os.environ, "POLARS_MAX_THREADS": str(CORES)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-4000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _raw_dir(customers: int) -> Path:
    from features.synthetic import GeneratorConfig, generate

    shared = {100_000: BIGDATA / "p100k", 1_000_000: BIGDATA / "p1m"}.get(customers)
    if shared is not None and (shared / "customers.parquet").is_file():
        return shared
    raw_dir = DATA / "raw_1m" if customers == 1_000_000 else DATA / f"spark_{customers}"
    if not raw_dir.exists():
        seed = 1 if customers == 1_000_000 else 42
        generate(GeneratorConfig(customers=customers, seed=seed), raw_dir)
    return raw_dir


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _ratios(run: dict[str, Any]) -> None:
    """Spark over polars for each part whose two runs were measured in the same invocation."""
    for what in ("features", "score"):
        spark_run, polars_run = run.get(f"spark_{what}"), run.get(f"polars_{what}")
        key = f"{what}_spark_over_polars"
        same = (
            isinstance(spark_run, dict)
            and isinstance(polars_run, dict)
            and spark_run.get("invocation") == polars_run.get("invocation")
        )
        if same:
            run[key] = round(spark_run["wall_s"] / polars_run["wall_s"], 2)  # type: ignore[index]
            if spark_run.get("cpu_s") and polars_run.get("cpu_s"):  # type: ignore[union-attr]
                cpu = spark_run["cpu_s"] / polars_run["cpu_s"]  # type: ignore[index]
                run[f"{what}_spark_over_polars_cpu"] = round(cpu, 2)
        else:
            run.pop(key, None)
            run.pop(f"{what}_spark_over_polars_cpu", None)


def _score_estimates(runs: list[dict[str, Any]]) -> None:
    """Scoring wall time of sizes not scored, scaled from the largest size scored (labelled).

    Scoring = features + the SHAP pass; the rating part (score minus features of the same
    engine) is scaled linearly with customers, the features part is the size's own measure.
    """
    scored = [r for r in runs if isinstance(r.get("spark_score"), dict)]
    scored = [r for r in scored if isinstance(r.get("polars_score"), dict)]
    for run in runs:
        run.pop("score_estimate", None)
        if not scored or isinstance(run.get("spark_score"), dict):
            continue
        base = max(scored, key=lambda r: r["customers"])
        scale = run["customers"] / base["customers"]
        estimate: dict[str, Any] = {
            "kind": "ESTIMATE, not a measurement",
            "from_customers": base["customers"],
            "method": (
                "rating time (score wall - features wall, same engine) of the "
                f"{base['customers']} run x {scale:g}, plus this size's measured features wall"
            ),
        }
        for engine in ("polars", "spark"):
            features = run.get(f"{engine}_features")
            rating = base[f"{engine}_score"]["wall_s"] - base[f"{engine}_features"]["wall_s"]
            estimate[f"{engine}_rating_s"] = round(rating * scale)
            if isinstance(features, dict):
                estimate[f"{engine}_score_wall_s"] = round(rating * scale + features["wall_s"])
        run["score_estimate"] = estimate


def _save(entry: dict[str, Any]) -> None:
    """Merge one size's runs into the results file (other sizes and parts keep theirs)."""
    report: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    report.update(
        {
            "benchmark": "spark",
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "as_of": AS_OF.isoformat(),
            "master": f"local[{CORES}]",
            "spark_conf": SPARK_CONF,
        }
    )
    runs = {r["customers"]: r for r in report.get("runs", [])}
    old = runs.get(entry["customers"], {})
    runs[entry["customers"]] = {**old, **entry}
    ordered = sorted(runs.values(), key=lambda r: r["customers"])
    for run in ordered:
        _ratios(run)
    _score_estimates(ordered)
    report["runs"] = ordered
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--parts", nargs="+", choices=["features", "score"], default=["features", "score"]
    )
    parser.add_argument(
        "--engines", nargs="+", choices=["polars", "spark"], default=["polars", "spark"]
    )
    parser.add_argument("--raw", type=Path, default=None, help="use this raw folder (one size)")
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(RUNS[kind](*(Path(r) for r in rest))))
        return
    if args.raw is not None and len(args.sizes) != 1:
        parser.error("--raw needs exactly one --sizes value")
    DATA.mkdir(parents=True, exist_ok=True)
    bundle_dir = _bundle() if "score" in args.parts else None
    invocation = time.strftime("%Y-%m-%dT%H:%M:%S")
    for customers in args.sizes:
        raw_dir = args.raw or _raw_dir(customers)
        for part in args.parts:
            for engine in args.engines:
                kind = f"{engine}_{part}"
                extra = [str(bundle_dir)] if part == "score" else []
                before = _load()
                result = _child(kind, str(raw_dir), *extra)
                result.update(
                    {
                        "load_average_before": before,
                        "load_average_after": _load(),
                        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "invocation": invocation,
                    }
                )
                print(customers, kind, json.dumps(result), flush=True)
                # Written as soon as it is measured: a later timeout loses nothing.
                _save({"customers": customers, "cores": CORES, "raw": str(raw_dir), kind: result})
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
