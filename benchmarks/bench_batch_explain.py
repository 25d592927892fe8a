"""Batch explanations: rows per second of the portfolio scoring step against bare ``pred_contrib``.

The portfolio path (``rating.portfolio``) computes features chunk by chunk and hands each
chunk's matrix to ``RatingModel.score``: one ``Booster.predict(pred_contrib=True)`` pass, Platt
scaling of the contributions, PD, grade, tiers, hard rules, group totals and reason codes.
This benchmark times that scoring step on the same rows as a bare ``pred_contrib`` call (same
model, same thread count), and, for reference, the whole ``rate_portfolio`` (features too).

It also evaluates fasttreeshap (``TreeExplainer`` algorithms v0, v1, v2) for exactness against
``pred_contrib`` and speed. fasttreeshap cannot be a project dependency (its ``slicer==0.0.7``
pin conflicts with ``shap>=0.46``, and its isolated build targets NumPy 1 so the extension does
not import under NumPy 2), so it runs in a separate interpreter given by
``--fasttreeshap-python`` (e.g. a venv with ``uv pip install --no-build-isolation fasttreeshap``),
on the same model text and rows, saved to a temporary folder. ``shap.TreeExplainer`` (a
project dependency) is timed on a subset too.

Writes ``benchmarks/results/batch_explain.json``.

Usage: ``uv run python benchmarks/bench_batch_explain.py [--customers 3000]
[--fasttreeshap-python /path/to/venv/bin/python]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving import bench_bundle, model_shape  # noqa: E402

from features.catalog import FEATURE_SPEC  # noqa: E402
from features.groups.common import to_frames  # noqa: E402
from rating.model import RatingModel  # noqa: E402
from rating.portfolio import iter_rated_chunks, rate_portfolio  # noqa: E402
from tests.serving.factory import AS_OF, make_portfolio  # noqa: E402

FASTTREESHAP_SCRIPT = r"""
import json, sys, time
import numpy as np, lightgbm as lgb
import fasttreeshap

work = sys.argv[1]
booster = lgb.Booster(model_file=f"{work}/model.txt")
x = np.load(f"{work}/x.npy")
reference = np.load(f"{work}/pred_contrib.npy")
out = {"fasttreeshap_version": fasttreeshap.__version__, "numpy": np.__version__,
       "lightgbm": lgb.__version__, "algorithms": {}}
t0 = time.perf_counter()
booster.predict(x, pred_contrib=True, num_threads=1)
out["pred_contrib_s_same_process"] = time.perf_counter() - t0
for algorithm in ("v0", "v1", "v2"):
    try:
        explainer = fasttreeshap.TreeExplainer(booster, algorithm=algorithm, n_jobs=1)
        t0 = time.perf_counter()
        values = explainer.shap_values(x, check_additivity=False)
        elapsed = time.perf_counter() - t0
        values = values[1] if isinstance(values, list) else values
        expected = np.ravel(explainer.expected_value)[-1]
        diff = np.abs(values - reference[:, :-1])
        rows_bad = int((diff.max(axis=1) > 1e-9).sum())
        out["algorithms"][algorithm] = {
            "seconds": elapsed,
            "max_abs_diff": float(diff.max()),
            "rows_differing_over_1e-9": rows_bad,
            "rows_with_missing": int(np.isnan(x).any(axis=1).sum()),
            "expected_value_diff": float(abs(expected - reference[0, -1])),
        }
    except Exception as error:  # noqa: BLE001 - recorded as the algorithm's result
        out["algorithms"][algorithm] = {"error": repr(error)[:500]}
print(json.dumps(out))
"""


def timed(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def feature_rows(raw, model: RatingModel) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The portfolio's model matrix and flags, exactly as the portfolio path builds them."""
    xs = []
    for chunk in iter_rated_chunks(raw, AS_OF, model, chunk_size=100_000):
        xs.append(chunk.features)
    x = np.ascontiguousarray(np.concatenate(xs), dtype=np.float64)
    names = model.spec.names
    flag_names = [f for f in model.policy.flag_names if f in FEATURE_SPEC.names]
    flags = {f: x[:, names.index(f)].copy() for f in flag_names}
    return x, flags


def evaluate_fasttreeshap(python: str | None, work: Path, model: RatingModel, x, reference):
    """Run the fasttreeshap evaluation in ``python`` (or in-process when importable)."""
    if python is None:
        try:
            import fasttreeshap  # noqa: F401
        except Exception as error:
            return {
                "available": False,
                "reason": f"not importable in the project environment: {error!r}"[:300],
                "how": "pass --fasttreeshap-python with an interpreter that has it",
            }
        python = sys.executable
    (work / "model.txt").write_text(model.bundle.model_text)
    np.save(work / "x.npy", x)
    np.save(work / "pred_contrib.npy", reference)
    script = work / "fasttreeshap_eval.py"
    script.write_text(FASTTREESHAP_SCRIPT)
    done = subprocess.run(
        [python, str(script), str(work)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        return {"available": False, "python": python, "reason": done.stderr[-1500:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    base = result["pred_contrib_s_same_process"]
    for entry in result["algorithms"].values():
        if "seconds" in entry:
            entry["speedup_vs_pred_contrib"] = round(base / entry["seconds"], 3)
            entry["exact_1e-9"] = entry["rows_differing_over_1e-9"] == 0
    return {"available": True, "python": python, "rows": len(x), **result}


def evaluate_shap(model: RatingModel, x: np.ndarray, reference: np.ndarray, rows: int) -> dict:
    """``shap.TreeExplainer`` (project dependency) on the first ``rows`` rows."""
    import shap

    subset = x[:rows]
    try:
        explainer = shap.TreeExplainer(model.booster)
        t0 = time.perf_counter()
        values = explainer.shap_values(subset, check_additivity=False)
        elapsed = time.perf_counter() - t0
    except Exception as error:
        return {"error": repr(error)[:500]}
    values = values[1] if isinstance(values, list) else values
    t0 = time.perf_counter()
    model.booster.predict(subset, pred_contrib=True, num_threads=1)
    base = time.perf_counter() - t0
    diff = np.abs(values - reference[:rows, :-1])
    return {
        "shap_version": shap.__version__,
        "rows": int(rows),
        "seconds": round(elapsed, 4),
        "pred_contrib_seconds": round(base, 4),
        "speedup_vs_pred_contrib": round(base / elapsed, 3),
        "max_abs_diff": float(diff.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--trees", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shap-rows", type=int, default=500)
    parser.add_argument("--fasttreeshap-python", default=os.environ.get("FASTTREESHAP_PYTHON"))
    args = parser.parse_args()
    started = time.perf_counter()

    work = Path(tempfile.mkdtemp(prefix="bench-batch-explain-"))
    bundle = bench_bundle(work / "bundle", trees=args.trees)
    raw = make_portfolio(args.customers, seed=11, n_transactions=60)
    frames = to_frames(raw)
    model = RatingModel(bundle, num_threads=1)
    x, flags = feature_rows(frames, model)
    n = len(x)
    threads = os.cpu_count() or 1
    model_mt = RatingModel(bundle, num_threads=threads)
    booster = model.booster

    reference = np.asarray(booster.predict(x, pred_contrib=True, num_threads=1))
    bare_1 = timed(lambda: booster.predict(x, pred_contrib=True, num_threads=1), args.repeats)
    score_1 = timed(lambda: model.score(x, flags), args.repeats)
    bare_n = timed(lambda: booster.predict(x, pred_contrib=True, num_threads=threads), args.repeats)
    score_n = timed(lambda: model_mt.score(x, flags), args.repeats)
    rate = timed(lambda: rate_portfolio(frames, AS_OF, model, chunk_size=1000), 1)

    result = model.score(x, flags)
    additivity = float(
        np.abs(result.base + result.contributions.sum(axis=1) - result.log_odds).max()
    )

    def rps(seconds: float) -> float:
        return round(n / seconds, 1)

    out = {
        "benchmark": "batch_explain",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "workload": {
            "rows": n,
            "model": model_shape(model),
            "missing_share": round(float(np.isnan(x).mean()), 4),
        },
        "threads_1": {
            "bare_pred_contrib_rows_per_s": rps(bare_1),
            "rating_score_rows_per_s": rps(score_1),
            "score_time_over_bare_time": round(score_1 / bare_1, 3),
        },
        f"threads_{threads}": {
            "bare_pred_contrib_rows_per_s": rps(bare_n),
            "rating_score_rows_per_s": rps(score_n),
            "score_time_over_bare_time": round(score_n / bare_n, 3),
        },
        "rate_portfolio_with_features_rows_per_s": rps(rate),
        "target_ratio_max": 1.2,
        "additivity_max_abs": additivity,
        "shap_tree_explainer": evaluate_shap(model, x, reference, min(args.shap_rows, n)),
        "fasttreeshap": evaluate_fasttreeshap(args.fasttreeshap_python, work, model, x, reference),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    path = ROOT / "benchmarks" / "results" / "batch_explain.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
