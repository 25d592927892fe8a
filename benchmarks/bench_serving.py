"""Serving benchmark: ``POST /score`` from raw records on a real ``bentoml serve`` (loopback).

Workload: realistic customers (3 years of quarterly statements, 5 facilities x 36 instalments,
1,000 / 2,000 / 3,000 transactions) scored by a 400-tree LightGBM bundle. Every served request
is parsed, validated, turned into features, scored with one ``pred_contrib`` pass (PD, grade,
tier, SHAP reasons and group contributions) and committed to the audit store (SQLite WAL,
synchronous=FULL) before the answer leaves.

Measured in the same run, on the same customers and the same model:

- the in-process floor: ``compute_feature_row`` + ``Booster.predict(pred_contrib=True)`` per
  customer, plus every other stage of the request path timed alone (where the time goes);
- the service: sequential p50/p99 of ``/score`` (and ``/explain``), throughput with 1, 8 and
  32 concurrent clients (bounded loops) with 1 and 2 workers, adaptive batching on and off,
  also with feature-vector bodies;
- ``mlflow models serve`` of the same bundle (models from code, a temporary SQLite registry),
  with the same worker counts: (a) fed the same ``/score`` bodies, which a baseline model
  (``baselines/mlflow_raw_model.py``) validates, turns into features and decides with the same
  code, without the audit commit; (b) fed the customers' feature rows through the training
  package's pyfunc. Sequential p50/p99 and throughput with 1, 8 and 32 clients.

Targets (ratios): sequential p50 <= 2.5x the floor; throughput >= 3x ``mlflow models serve``.
The load generator runs on the same 2 cores as the server under test, for both servers.
Writes ``benchmarks/results/serving.json``.

With ``--baseline-ref REV`` (e.g. the last revision on BentoML's private CorkDispatcher) the
same run also serves REV's service from a temporary git worktree, with this environment, and
measures both at 8 and 32 clients, alternating (``batching_vs_baseline``); ``--baseline-only``
measures just that and updates that section of the existing JSON.

With ``--by-id``, only scoring by customer id is measured and written to the ``by_id`` section
of the existing JSON: the same customers in a throwaway PostgreSQL store (plus other customers,
loaded by ``load_folder`` with its indexes, then ANALYZE); the in-process floor (store read +
``compute_feature_row`` + ``pred_contrib``, with the read also timed as one query per table);
a by-id ``/score`` on ``bentoml serve`` with ``RISKGRADE_RAW_URL`` and ``mlflow models serve``
of the same bundle doing the same read (``baselines/mlflow_by_id_model.py``), 1 worker each,
sequential and at 1/8/32 clients, in alternating rounds. Targets: p50 <= 2x the floor;
throughput >= 3x MLflow's at 8 and 32 clients.

Usage: ``uv run python benchmarks/bench_serving.py [--customers 24] [--requests 200]``
(``--by-id [--by-id-rounds 3] [--by-id-filler 2000]``)
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit import AuditConfig, open_audit_store  # noqa: E402
from features.asof import cut_tables  # noqa: E402
from features.catalog import FEATURE_SPEC, compute_feature_row, compute_features  # noqa: E402
from features.dbload import load_folder  # noqa: E402
from features.io import RawTables, write_raw  # noqa: E402
from features.schema import TABLES  # noqa: E402
from features.source import DatabaseSource, point_in_time_query  # noqa: E402
from features.spec import FeatureKind  # noqa: E402
from rating.bundle import Bundle, write_bundle  # noqa: E402
from rating.calibration import PlattCalibration  # noqa: E402
from rating.model import RatingModel  # noqa: E402
from rating.policy import RatingPolicy  # noqa: E402
from rating.scale import MasterScale  # noqa: E402
from serving.auth import create_token  # noqa: E402
from serving.batch import request_example  # noqa: E402
from serving.engine import Engine, RequestSource, request_frames  # noqa: E402
from serving.schemas import DEFAULT_LIMITS, ScoreRequest  # noqa: E402
from tests.serving.factory import AS_OF, make_portfolio  # noqa: E402

TRANSACTION_MIX = (1000, 2000, 3000)
CONCURRENCY = (1, 8, 32)


# -- workload ------------------------------------------------------------------------------


def bench_bundle(
    target: Path, *, trees: int = 400, seed: int = 3, n_customers: int = 1200
) -> Bundle:
    """A bundle with a production-sized LightGBM (``trees`` trees, up to 31 leaves)."""
    raw = make_portfolio(n_customers, seed=seed, n_transactions=40)
    frame = compute_features(raw, AS_OF)
    names = FEATURE_SPEC.names
    x = np.ascontiguousarray(frame[names].to_numpy(dtype=np.float64))
    rng = np.random.default_rng(seed)

    def column(name: str) -> np.ndarray:
        return np.nan_to_num(x[:, names.index(name)], nan=0.0)

    signal_ = (
        4.0 * column("debt_ratio") + 0.05 * column("max_dpd_12m") - 0.3 * column("current_ratio")
    )
    p = 1 / (1 + np.exp(-(signal_ - np.median(signal_) - 1.0)))
    y = (rng.random(len(x)) < p).astype(float)
    cats = [j for j, f in enumerate(FEATURE_SPEC.features) if f.kind is FeatureKind.CATEGORICAL]
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "learning_rate": 0.03,
        "min_data_in_leaf": 10,
        "feature_fraction": 0.8,
        "deterministic": True,
        "seed": seed,
        "num_threads": 1,
        "verbose": -1,
    }
    data = lgb.Dataset(x, label=y, feature_name=names, categorical_feature=cats)
    booster = lgb.train(params, data, num_boost_round=trees)
    return write_bundle(
        target,
        model_text=booster.model_to_string(),
        calibration=PlattCalibration(a=0.9, b=-0.2),
        scale=MasterScale(),
        policy=RatingPolicy(),
        spec=FEATURE_SPEC,
        reference={"note": "benchmark bundle"},
        metadata={
            "version": f"bench-{trees}",
            "trained_at": datetime(2024, 7, 1, tzinfo=UTC),
            "metrics": {},
        },
        overwrite=True,
    )


def model_shape(model: RatingModel) -> dict[str, float]:
    """Trees and mean leaves per tree of the bundle's booster."""
    dump = model.booster.dump_model()["tree_info"]
    return {
        "trees": len(dump),
        "mean_leaves": round(float(np.mean([t["num_leaves"] for t in dump])), 1),
        "features": model.booster.num_feature(),
    }


def score_bodies(per_group: int) -> list[dict]:
    """``/score`` bodies: ``per_group`` customers for each transaction count of the mix."""
    bodies = []
    for k, n_transactions in enumerate(TRANSACTION_MIX):
        raw = make_portfolio(
            per_group,
            seed=21 + k,
            n_statements=12,
            n_facilities=5,
            n_instalments=36,
            n_transactions=n_transactions,
        )
        for cid in sorted(raw.customers["customer_id"]):
            body = request_example(raw, cid, AS_OF)
            body["customer"]["customer_id"] = f"{cid}-T{n_transactions}"
            bodies.append(body)
    return bodies


def feature_vector_body(engine: Engine, body: dict) -> dict:
    """The same customer as a ``feature_vector`` request (features computed here)."""
    rows = engine.features([ScoreRequest.model_validate(body)])
    values = {
        name: (None if math.isnan(v) else float(v))
        for name, v in zip(engine.model.spec.names, rows.x[0], strict=True)
    }
    cid = body["customer"]["customer_id"]
    return {"as_of": body["as_of"], "feature_vector": {"customer_id": cid, "values": values}}


# -- timing helpers ------------------------------------------------------------------------


def percentiles(samples: list[float] | np.ndarray) -> dict[str, float]:
    """p50/p99/mean in milliseconds of samples in seconds."""
    ms = np.asarray(samples, dtype=np.float64) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "n": int(ms.size),
    }


def in_process(engine: Engine, bodies: list[bytes], audit_dir: Path, rounds: int) -> dict:
    """Every stage of the request path timed alone, and the floor (features + pred_contrib)."""
    booster = engine.model.booster
    index = engine._catalog_index
    requests = [
        ScoreRequest.model_validate_json(b, strict=True, context={"limits": DEFAULT_LIMITS})
        for b in bodies
    ]
    frames = [request_frames(r) for r in requests]
    audit = open_audit_store(AuditConfig(path=audit_dir / "floor-audit.db"))
    stages: dict[str, list[float]] = {
        k: []
        for k in (
            "parse_validate_json",
            "request_frames",
            "compute_feature_row",
            "pred_contrib",
            "engine_decide",
            "audit_commit",
            "response_json",
        )
    }
    floor: list[float] = []
    clock = time.perf_counter
    for _ in range(rounds):
        for body, request, frame in zip(bodies, requests, frames, strict=True):
            t0 = clock()
            ScoreRequest.model_validate_json(body, strict=True, context={"limits": DEFAULT_LIMITS})
            t1 = clock()
            request_frames(request)
            t2 = clock()
            values = compute_feature_row(frame, request.as_of)
            t3 = clock()
            assert values is not None
            row = np.ascontiguousarray(values[index][None, :])
            t4 = clock()
            booster.predict(row, pred_contrib=True, num_threads=1)
            t5 = clock()
            decision = engine.decide([request], "bench", sources=[RequestSource(body)])[0]
            t6 = clock()
            audit.append(decision.record)
            t7 = clock()
            json.dumps(decision.response)
            t8 = clock()
            for name, elapsed in zip(
                stages, (t1 - t0, t2 - t1, t3 - t2, t5 - t4, t6 - t5, t7 - t6, t8 - t7), strict=True
            ):
                stages[name].append(elapsed)
            floor.append((t3 - t2) + (t5 - t4))
    audit.close()
    return {
        "floor_features_plus_pred_contrib": percentiles(floor),
        "stages": {name: percentiles(samples) for name, samples in stages.items()},
    }


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# mlflow and bentoml start their servers (uvicorn, ...) through PATH: put this venv first.
VENV_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited early:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready in {timeout} s")


WRK_SCRIPT = ROOT / "benchmarks/load/post_bodies.lua"
GENERATOR: dict[str, Any] = {"name": "httpx", "seconds": 6.0}
"""The load generator in use: ``wrk`` (C, epoll; set in ``main`` when on PATH) or ``httpx``."""
_BODY_LISTS: dict[int, Path] = {}


def _body_list(bodies: list[bytes]) -> Path:
    """The bodies as files plus a list file for the wrk script (written once per list)."""
    if id(bodies) not in _BODY_LISTS:
        folder = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
        paths = []
        for k, body in enumerate(bodies):
            path = folder / f"{k:04d}.json"
            path.write_bytes(body)
            paths.append(str(path))
        (folder / "list.txt").write_text("\n".join(paths) + "\n")
        _BODY_LISTS[id(bodies)] = folder / "list.txt"
    return _BODY_LISTS[id(bodies)]


def load_wrk(url: str, headers: dict[str, str], bodies: list[bytes], clients: int) -> dict:
    """``clients`` wrk connections posting the bodies back to back for the set duration."""
    env = {
        **os.environ,
        "BODIES": str(_body_list(bodies)),
        "AUTH": headers.get("Authorization", ""),
    }
    seconds = max(1, round(GENERATOR["seconds"]))
    command = ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{seconds}s"]
    command += ["--timeout", "60s", "-s", str(WRK_SCRIPT), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=600)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    errors = sum(summary[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    ok = summary["requests"] - summary["non_2xx"] - errors
    wall = summary["duration_us"] / 1e6
    return {
        "clients": clients,
        "requests": summary["requests"],
        "ok": ok,
        "statuses": {"2xx": ok, "non_2xx": summary["non_2xx"], "socket_errors": errors},
        "wall_s": round(wall, 3),
        "throughput_rps": round(ok / wall, 2),
        "p50_ms": round(summary["p50_us"] / 1000, 3),
        "p99_ms": round(summary["p99_us"] / 1000, 3),
        "mean_ms": round(summary["mean_us"] / 1000, 3),
        "n": summary["requests"],
    }


def load(
    url: str, headers: dict[str, str], bodies: list[bytes], clients: int, per_client: int
) -> dict:
    """``clients`` clients posting pre-encoded bodies back to back (wrk: for a set time)."""
    if GENERATOR["name"] == "wrk":
        return load_wrk(url, headers, bodies, clients)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def worker(offset: int) -> None:
        with httpx.Client(timeout=120) as client:
            barrier.wait()
            for k in range(per_client):
                body = bodies[(offset + k) % len(bodies)]
                t0 = time.perf_counter()
                response = client.post(url, content=body, headers=headers)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=worker, args=(i * 7,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start_ = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start_
    ok = statuses.get(200, 0)
    return {
        "clients": clients,
        "requests": clients * per_client,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_s": round(wall, 3),
        "throughput_rps": round(ok / wall, 2),
        **percentiles(latencies),
    }


def concurrency_sweep(
    url: str, headers: dict[str, str], bodies: list[bytes], total: int
) -> list[dict]:
    return [load(url, headers, bodies, c, max(4, total // c)) for c in CONCURRENCY]


def serve_bento(
    work: Path,
    bundle: Bundle,
    token_file: Path,
    args,
    *,
    workers: int,
    batching: bool,
    source: Path = ROOT,
    tag: str = "",
    service: str | None = None,
    extra_path: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, str, Path]:
    """``bentoml serve`` of the service in ``source`` (this checkout, or another revision's)."""
    port = free_port()
    name = f"bentoml{tag}-w{workers}-{'batch' if batching else 'nobatch'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (source, extra_path) if p is not None),
        "RISKGRADE_BUNDLE": str(bundle.path),
        "RISKGRADE_AUDIT_DB": str(work / f"{name}-audit.db"),
        "RISKGRADE_TOKENS": str(token_file),
        "RISKGRADE_MAX_CONCURRENCY": "64",
        "RISKGRADE_WORKERS": str(workers),
        "RISKGRADE_BATCHING": "true" if batching else "false",
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "bentoml", "serve", service or args.service]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = work / f"{name}.log"
    process = start(command, env, log, cwd=source)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", process, log)
    except Exception:
        stop(process)
        raise
    return process, f"http://127.0.0.1:{port}", log


def bento_runs(
    work: Path, bundle: Bundle, raw: list[bytes], vectors: list[bytes], explain: list[bytes], args
) -> dict:
    """The service with 1 and 2 workers (the same worker counts MLflow gets), batching on/off."""
    tokens = work / "tokens.json"
    token = create_token(tokens, "bench", "scorer")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    out: dict[str, object] = {}
    process, base, _ = serve_bento(work, bundle, tokens, args, workers=1, batching=True)
    try:
        load(f"{base}/score", headers, raw, clients=1, per_client=20)  # warm-up, batcher training
        out["score_raw_sequential"] = load(f"{base}/score", headers, raw, 1, args.requests)
        out["explain_raw_sequential"] = load(
            f"{base}/explain", headers, explain, 1, max(20, args.requests // 4)
        )
        out["score_raw_concurrent"] = concurrency_sweep(
            f"{base}/score", headers, raw, args.load_requests
        )
        out["score_vector_sequential"] = load(f"{base}/score", headers, vectors, 1, args.requests)
        out["score_vector_concurrent"] = concurrency_sweep(
            f"{base}/score", headers, vectors, args.load_requests
        )
    finally:
        stop(process)
    for batching in (True, False):
        process, base, _ = serve_bento(work, bundle, tokens, args, workers=2, batching=batching)
        try:
            load(f"{base}/score", headers, raw, clients=2, per_client=20)
            key = "score_raw_concurrent_w2" + ("" if batching else "_no_batching")
            out[key] = concurrency_sweep(f"{base}/score", headers, raw, args.load_requests)
        finally:
            stop(process)
    return out


BASELINE_CLIENTS = (8, 32)
BASELINES = ROOT / "benchmarks/baselines"
CORK_SERVICE = "cork_service:RiskgradeService"
"""This checkout's service with the batcher it replaced (``baselines/cork_service.py``)."""


def baseline_runs(work: Path, bundle: Bundle, raw: list[bytes], args) -> dict:
    """This checkout's batching against ``args.baseline_ref``'s, in the same run.

    The old revision is checked out into a temporary git worktree and served from there with
    this environment (same interpreter and packages). Both serve 1 worker with adaptive
    batching on, the same bundle and bodies; measurements alternate (theirs, ours, ours,
    theirs, ...) for ``args.baseline_rounds`` rounds, so drift in the machine's load hits both
    alike. Throughput is the median over the rounds; each round's ratio is kept too, with the
    1-minute load average at each measurement.
    """
    tree = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "src"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(tree), args.baseline_ref], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", args.baseline_ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    tokens = work / "tokens.json"
    token = create_token(tokens, "bench-baseline", "scorer")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sides: dict[str, tuple[Path, str, str | None]] = {
        "current": (ROOT, "-current", None),
        "baseline": (tree, "-baseline", None),
    }
    if not args.skip_cork_variant:
        sides["current_code_old_batcher"] = (ROOT, "-cork", CORK_SERVICE)
    runs: dict[str, dict[str, list[dict]]] = {side: {} for side in sides}
    served: dict[str, set[str]] = {side: set() for side in sides}
    """Digests of the OpenAPI document each side served: proof of which code answered."""
    try:
        for round_ in range(args.baseline_rounds):
            order = list(sides.items())
            for side, (source, tag, service) in order if round_ % 2 else order[::-1]:
                process, base, _ = serve_bento(
                    work,
                    bundle,
                    tokens,
                    args,
                    workers=1,
                    batching=True,
                    source=source,
                    tag=tag,
                    service=service,
                    extra_path=BASELINES if service else None,
                )
                try:
                    load(f"{base}/score", headers, raw, clients=2, per_client=10)  # warm-up
                    document = httpx.get(f"{base}/openapi.json", headers=headers, timeout=60)
                    served[side].add(hashlib.sha256(document.content).hexdigest())
                    for clients in BASELINE_CLIENTS:
                        result = load(
                            f"{base}/score",
                            headers,
                            raw,
                            clients,
                            max(4, args.load_requests // clients),
                        )
                        result["load_average_1min"] = round(os.getloadavg()[0], 2)
                        runs[side].setdefault(str(clients), []).append(result)
                finally:
                    stop(process)
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)

    def median_rps(side: str, clients: str) -> float:
        return float(np.median([r["throughput_rps"] for r in runs[side][clients]]))

    def per_round(theirs: str) -> dict[str, list[float]]:
        """Round k of each side ran back to back: their ratio saw the same load."""
        return {
            c: [
                ratio(o["throughput_rps"], t["throughput_rps"])
                for o, t in zip(runs["current"][c], runs[theirs][c], strict=True)
            ]
            for c in runs["current"]
        }

    def median(ratios: dict[str, list[float]]) -> dict[str, float]:
        return {c: round(float(np.median(r)), 3) for c, r in ratios.items()}

    isolated: dict[str, Any] = {}
    if "current_code_old_batcher" in runs:
        rounds = per_round("current_code_old_batcher")
        isolated = {
            "current_code_old_batcher": {
                "what": "this checkout's service with the CorkDispatcher wrapper of 28ebd23 "
                "(benchmarks/baselines/cork_service.py): the batcher alone compared",
                "openapi_sha256": sorted(served["current_code_old_batcher"]),
                "runs": runs["current_code_old_batcher"],
            },
            "throughput_own_batcher_over_old_batcher_same_code_per_round": rounds,
            "median_of_round_ratios_same_code": median(rounds),
        }

    return {
        "what": "POST /score from raw records, 1 worker, adaptive batching on",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1_5_15_before": list(LOAD_BEFORE),
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "current": {
            "batcher": "serving.batching.AdaptiveBatcher (own)",
            "openapi_sha256": sorted(served["current"]),
            "runs": runs["current"],
        },
        "different_code_served": not served["current"] & served["baseline"],
        "baseline": {
            "ref": args.baseline_ref,
            "commit": commit,
            "batcher": "bentoml._internal.marshal.dispatcher.CorkDispatcher",
            "environment": "this checkout's .venv (the old lock is a subset of this one)",
            "openapi_sha256": sorted(served["baseline"]),
            "runs": runs["baseline"],
        },
        "median_throughput_rps": {
            c: {side: median_rps(side, c) for side in runs} for c in runs["current"]
        },
        "throughput_current_over_baseline": {
            c: ratio(median_rps("current", c), median_rps("baseline", c)) for c in runs["current"]
        },
        "throughput_current_over_baseline_per_round": per_round("baseline"),
        "median_of_round_ratios": median(per_round("baseline")),
        **isolated,
        "target_ratio_min": 1.0,
    }


LOAD_BEFORE: list[float] = []


def log_pyfunc(work: Path, bundle: Bundle, python_model: Path, example, name: str) -> str:
    """Log ``python_model`` (from code) with the bundle as artifact; its registered URI."""
    import mlflow

    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.get_experiment_by_name("bench")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment("bench", artifact_location=(work / "mlruns").as_uri())
    )
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(python_model),
            artifacts={"bundle": str(bundle.path)},
            pip_requirements=["riskgrade"],
            registered_model_name=name,
            signature=mlflow.models.infer_signature(example),
        )
    return f"models:/{name}/{info.registered_model_version}"


def mlflow_serve(
    work: Path, model_uri: str, workers: int, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT), "PATH": VENV_PATH}
    env.update(extra_env or {})
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)]
    command += ["-w", str(workers)]
    log = work / f"mlflow-serve-{model_uri.split('/')[-2]}-w{workers}.log"
    process = start(command, env, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/ping", process, log)
    except Exception:
        stop(process)
        raise
    return process, f"http://127.0.0.1:{port}"


def mlflow_runs(work: Path, bundle: Bundle, rows: np.ndarray, raw: list[bytes], args) -> dict:
    """``mlflow models serve`` of the same bundle, fed the same customers two ways.

    - raw records: the baseline model from code (``baselines/mlflow_raw_model.py``) runs the
      same validation, features and decision code on each ``/score`` body (no audit);
    - feature rows: the training package's pyfunc on the features computed beforehand.
    """
    import pandas as pd

    from training.registry import PYFUNC_FILE

    headers = {"Content-Type": "application/json"}
    names = bundle.spec.names
    out: dict[str, object] = {}
    t0 = time.perf_counter()
    raw_uri = log_pyfunc(
        work,
        bundle,
        ROOT / "benchmarks/baselines/mlflow_raw_model.py",
        pd.DataFrame({"request": [raw[0].decode()]}),
        "riskgrade-bench-raw",
    )
    vector_uri = log_pyfunc(
        work, bundle, PYFUNC_FILE, pd.DataFrame(rows[:5], columns=names), "riskgrade-bench"
    )
    out["log_model_s"] = round(time.perf_counter() - t0, 2)
    raw_bodies = [
        json.dumps({"dataframe_split": {"columns": ["request"], "data": [[b.decode()]]}}).encode()
        for b in raw
    ]
    vector_bodies = [
        json.dumps({"dataframe_split": {"columns": names, "data": [row.tolist()]}}).encode()
        for row in rows
    ]  # NaN literals: MLflow's JSON parser reads them as missing (float NaN)
    for uri, bodies, workers, key in (
        (raw_uri, raw_bodies, 1, "raw"),
        (raw_uri, raw_bodies, 2, "raw_w2"),
        (vector_uri, vector_bodies, 1, "vector"),
    ):
        process, base = mlflow_serve(work, uri, workers)
        url = f"{base}/invocations"
        try:
            check = httpx.post(url, content=bodies[0], headers=headers, timeout=60)
            if check.status_code != 200:
                raise RuntimeError(f"mlflow serve answered {check.status_code}: {check.text}")
            load(url, headers, bodies, clients=workers, per_client=10)  # warm-up
            if workers == 1:
                out[f"{key}_sequential"] = load(url, headers, bodies, 1, args.requests)
            out[f"{key}_concurrent"] = concurrency_sweep(url, headers, bodies, args.load_requests)
            out[f"{key}_model_uri"] = uri
            if key == "vector":
                out["vector_sample_response"] = check.json()
        finally:
            stop(process)
    return out


# -- scoring by customer id (--by-id) --------------------------------------------------------


def _suffixed(raw: RawTables, suffix: str) -> RawTables:
    """``raw`` with its ids made unique to one part of the store (``suffix`` appended)."""
    tables = {}
    for table, frame in raw.items():
        frame = frame.copy()
        for column in ("customer_id", "facility_id", "txn_id"):
            if column in frame:
                frame[column] = frame[column].astype(str) + suffix
        tables[table] = frame
    return RawTables.from_mapping(tables)


def by_id_store(per_group: int, filler: int) -> tuple[RawTables, list[str]]:
    """The workload's customers (the ``/score`` mix) and ``filler`` others; the workload's ids."""
    import pandas as pd

    parts = []
    for k, n_transactions in enumerate(TRANSACTION_MIX):
        raw = make_portfolio(
            per_group,
            seed=21 + k,
            n_statements=12,
            n_facilities=5,
            n_instalments=36,
            n_transactions=n_transactions,
        )
        parts.append(_suffixed(raw, f"-T{n_transactions}"))
    ids = [cid for part in parts for cid in sorted(part.customers["customer_id"])]
    if filler:
        parts.append(_suffixed(make_portfolio(filler, seed=99, n_transactions=120), "-F"))
    tables = {
        table: pd.concat([getattr(part, table) for part in parts], ignore_index=True)
        for table in TABLES
    }
    return RawTables.from_mapping(tables), ids


def by_id_floor(engine: Engine, source: DatabaseSource, ids: list[str], rounds: int) -> dict:
    """The in-process floor of a by-id ``/score``: store read + features + ``pred_contrib``.

    Also timed alone: the read as one statement (what the service does) and as one
    point-in-time query per table on one connection (the read before), and what the service
    adds to the floor on the tables read: the raw-data contract check and the records digest.
    """
    from features.digest import record_digests
    from features.validate import validate_tables

    booster = engine.model.booster
    index = engine._catalog_index
    stages: dict[str, list[float]] = {
        "read_one_statement": [],
        "read_one_query_per_table": [],
        "compute_feature_row": [],
        "pred_contrib": [],
        "contract_check": [],
        "records_digest": [],
    }
    floor: list[float] = []
    clock = time.perf_counter

    def per_table(cid: str) -> dict:
        with source.connect() as connection:
            known = {
                table: source.query(table, point_in_time_query(table, AS_OF, [cid]), connection)
                for table in TABLES
            }
        return cut_tables(known.items(), AS_OF)[0]

    for _ in range(rounds):
        for cid in ids:
            t0 = clock()
            tables = source.read_customers_at([cid], AS_OF)
            t1 = clock()
            values = compute_feature_row(RawTables.from_mapping(tables), AS_OF)
            t2 = clock()
            assert values is not None
            row = np.ascontiguousarray(values[index][None, :])
            t3 = clock()
            booster.predict(row, pred_contrib=True, num_threads=1)
            t4 = clock()
            per_table(cid)
            t5 = clock()
            validate_tables(tables, AS_OF)
            t6 = clock()
            record_digests(tables, [cid])
            t7 = clock()
            elapsed_all = (t1 - t0, t5 - t4, t2 - t1, t4 - t3, t6 - t5, t7 - t6)
            for name, elapsed in zip(stages, elapsed_all, strict=True):
                stages[name].append(elapsed)
            floor.append((t2 - t0) + (t4 - t3))
    return {
        "floor_read_features_pred_contrib": percentiles(floor),
        "stages": {name: percentiles(samples) for name, samples in stages.items()},
    }


def by_id_runs(work: Path, bundle: Bundle, url: str, ids: list[str], args) -> dict:
    """A by-id ``/score`` served by BentoML and by ``mlflow models serve`` (same store read).

    Both servers (1 worker each) stay up; each round measures one then the other, sequential
    and at 1/8/32 clients, so a round's ratio saw the same machine load.
    """
    import pandas as pd

    tokens = work / "tokens.json"
    token = create_token(tokens, "bench", "scorer")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    day = AS_OF.isoformat()
    bodies = [json.dumps({"customer_id": cid, "as_of": day}).encode() for cid in ids]
    frames = [
        json.dumps(
            {"dataframe_split": {"columns": ["customer_id", "as_of"], "data": [[cid, day]]}}
        ).encode()
        for cid in ids
    ]
    store = {"RISKGRADE_RAW_URL": url}
    model_uri = log_pyfunc(
        work,
        bundle,
        ROOT / "benchmarks/baselines/mlflow_by_id_model.py",
        pd.DataFrame({"customer_id": ids[:1], "as_of": [day]}),
        "riskgrade-bench-by-id",
    )
    bento, base, _ = serve_bento(
        work, bundle, tokens, args, workers=1, batching=True, tag="-by-id", extra_env=store
    )
    try:
        mlflow, mlflow_base = mlflow_serve(work, model_uri, 1, extra_env=store)
    except Exception:
        stop(bento)
        raise
    sides = {
        "bentoml": (f"{base}/score", headers, bodies),
        "mlflow_models_serve": (
            f"{mlflow_base}/invocations",
            {"Content-Type": "application/json"},
            frames,
        ),
    }
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    try:
        for side, (target, side_headers, side_bodies) in sides.items():
            check = httpx.post(target, content=side_bodies[0], headers=side_headers, timeout=60)
            if check.status_code != 200:
                raise RuntimeError(f"{side} answered {check.status_code}: {check.text}")
            load(target, side_headers, side_bodies, clients=1, per_client=20)  # warm-up
        for _ in range(args.by_id_rounds):
            for side, (target, side_headers, side_bodies) in sides.items():
                runs[side].append(
                    {
                        "load_average_1min": round(os.getloadavg()[0], 2),
                        "sequential": load(target, side_headers, side_bodies, 1, args.requests),
                        "concurrent": concurrency_sweep(
                            target, side_headers, side_bodies, args.load_requests
                        ),
                    }
                )
    finally:
        stop(bento)
        stop(mlflow)
    return runs


def by_id_benchmark(args) -> dict:
    """The by-id figures: in-process floor, BentoML and MLflow over the same PostgreSQL store."""
    from tests.conftest import create_pg_database, start_pg_cluster

    started = time.perf_counter()
    before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="bench-serving-by-id-"))
    bundle = bench_bundle(work / "bundle", trees=args.trees)
    engine = Engine(RatingModel(bundle))
    raw, ids = by_id_store(max(1, args.customers // len(TRANSACTION_MIX)), args.by_id_filler)
    write_raw(raw, work / "raw")
    with start_pg_cluster() as cluster:
        url = create_pg_database(cluster, "bench_by_id")
        load_folder(work / "raw", url)
        source = DatabaseSource(url, pooled=True)
        with source.connect(write=True) as connection:  # planner statistics, as a bank keeps
            connection.autocommit = True
            connection.execute("ANALYZE")
        with source.connect() as connection:
            version = connection.execute("SHOW server_version").fetchone()[0]
        source.read_customers_at(ids[:1], AS_OF)  # warm: pool, catalog
        gc.collect()
        floor = by_id_floor(engine, source, ids, args.rounds)
        source.close()
        runs = by_id_runs(work, bundle, url, ids, args)

    def median_rps(side: str, k: int) -> float:
        return float(np.median([r["concurrent"][k]["throughput_rps"] for r in runs[side]]))

    def median_p50(side: str) -> float:
        return float(np.median([r["sequential"]["p50_ms"] for r in runs[side]]))

    floor_p50 = floor["floor_read_features_pred_contrib"]["p50_ms"]
    p50 = median_p50("bentoml")
    over_mlflow = {
        str(c): ratio(median_rps("bentoml", k), median_rps("mlflow_models_serve", k))
        for k, c in enumerate(CONCURRENCY)
    }
    per_round = {
        str(c): [
            ratio(o["concurrent"][k]["throughput_rps"], m["concurrent"][k]["throughput_rps"])
            for o, m in zip(runs["bentoml"], runs["mlflow_models_serve"], strict=True)
        ]
        for k, c in enumerate(CONCURRENCY)
    }
    ratios = {
        "score_by_id_p50_ms": p50,
        "floor_p50_ms": floor_p50,
        "score_by_id_p50_over_floor_p50": ratio(p50, floor_p50),
        "target_p50_over_floor_max": 2.0,
        "mlflow_by_id_p50_ms": median_p50("mlflow_models_serve"),
        "median_throughput_rps": {
            str(c): {side: median_rps(side, k) for side in runs} for k, c in enumerate(CONCURRENCY)
        },
        "throughput_over_mlflow": over_mlflow,
        "throughput_over_mlflow_per_round": per_round,
        "target_throughput_over_mlflow_min": 3.0,
    }
    ratios["goals_met"] = {
        "p50_within_2x_floor": ratios["score_by_id_p50_over_floor_p50"] <= 2.0,
        "throughput_3x_mlflow_at_8": over_mlflow["8"] >= 3.0,
        "throughput_3x_mlflow_at_32": over_mlflow["32"] >= 3.0,
    }
    return {
        "what": "POST /score by customer id ({customer_id, as_of}): the records read from "
        "PostgreSQL in one statement, checked against the raw-data contract and digested, "
        "decided from the tables read (features, pred_contrib, reasons), audited as received "
        "plus the read; against mlflow models serve of the same bundle doing the same read, "
        "check and digest (no audit)",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1_5_15_before": before,
        "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "store": {
            "backend": f"PostgreSQL {version} (throwaway cluster on the same 2 cores)",
            "customers": len(raw.customers),
            "rows": raw.row_counts(),
            "indexes": "riskgrade load's (customer_id, date) indexes; ANALYZE after the load",
            "workload_customers": len(ids),
            "transactions_per_workload_customer": list(TRANSACTION_MIX),
        },
        "workers": "1 for both servers",
        "load_generator": (
            f"wrk, {GENERATOR['seconds']} s per measurement"
            if GENERATOR["name"] == "wrk"
            else "httpx threads"
        )
        + ", on the same 2 cores as the servers and PostgreSQL",
        "in_process": floor,
        "runs": runs,
        "ratios": ratios,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else math.inf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=24, help="split over 1k/2k/3k txns")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests")
    parser.add_argument("--load-requests", type=int, default=256, help="per concurrency level")
    parser.add_argument("--rounds", type=int, default=4, help="in-process passes")
    parser.add_argument("--trees", type=int, default=400)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--service",
        default="serving.service:RiskgradeService",
        help="BentoML service to serve (to measure a variant; must be importable)",
    )
    parser.add_argument(
        "--load-generator",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="wrk (C, light on the shared cores; apt install wrk) or httpx threads; auto: wrk "
        "when on PATH",
    )
    parser.add_argument("--wrk-seconds", type=int, default=6, help="per wrk measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serving.json")
    parser.add_argument(
        "--baseline-ref",
        help="also measure this git revision's service (e.g. the last one on BentoML's private "
        "dispatcher) at 8 and 32 clients, alternating with this checkout's",
    )
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument(
        "--skip-cork-variant",
        action="store_true",
        help="with --baseline-ref: do not also serve this checkout with the old batcher",
    )
    parser.add_argument(
        "--by-id",
        action="store_true",
        help="measure only scoring by customer id (PostgreSQL store) and update its section "
        "(by_id) of --out",
    )
    parser.add_argument("--by-id-rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument(
        "--by-id-filler", type=int, default=2000, help="other customers in the by-id store"
    )
    parser.add_argument(
        "--baseline-only",
        action="store_true",
        help="with --baseline-ref: measure only that comparison and update its section of --out",
    )
    args = parser.parse_args()
    wanted = args.load_generator
    if wanted == "wrk" and shutil.which("wrk") is None:
        parser.error("--load-generator wrk: wrk is not on PATH (apt-get install wrk)")
    GENERATOR["name"] = (
        "wrk" if wanted == "wrk" or (wanted == "auto" and shutil.which("wrk")) else "httpx"
    )
    GENERATOR["seconds"] = args.wrk_seconds
    if args.baseline_only and not args.baseline_ref:
        parser.error("--baseline-only needs --baseline-ref")
    LOAD_BEFORE[:] = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    if args.by_id:
        by_id = by_id_benchmark(args)
        document = json.loads(args.out.read_text()) if args.out.exists() else {}
        document["by_id"] = by_id
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
        print(json.dumps(by_id, indent=2))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    bundle = bench_bundle(work / "bundle", trees=args.trees)
    model = RatingModel(bundle)
    engine = Engine(model)
    bodies = score_bodies(max(1, args.customers // len(TRANSACTION_MIX)))
    raw = [json.dumps(b).encode() for b in bodies]
    explain = [json.dumps({**b, "chart": "none"}).encode() for b in bodies]
    vector_bodies = [feature_vector_body(engine, b) for b in bodies]
    vectors = [json.dumps(b).encode() for b in vector_bodies]
    rows = engine.features([ScoreRequest.model_validate(b) for b in bodies]).x

    if args.baseline_only:
        only = baseline_runs(work, bundle, raw, args)
        document = json.loads(args.out.read_text()) if args.out.exists() else {}
        document["batching_vs_baseline"] = {**only, "load_generator": GENERATOR["name"]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
        print(json.dumps(document["batching_vs_baseline"], indent=2))
        return
    engine.decide([ScoreRequest.model_validate(bodies[0])], "warm-up")
    gc.collect()
    gc.freeze()  # the workload's own objects out of the collector's way: a compute floor
    floor = in_process(engine, raw, work, args.rounds)
    served = bento_runs(work, bundle, raw, vectors, explain, args)
    mlflow = None if args.skip_mlflow else mlflow_runs(work, bundle, rows, raw, args)
    baseline = baseline_runs(work, bundle, raw, args) if args.baseline_ref else None

    floor_p50 = floor["floor_features_plus_pred_contrib"]["p50_ms"]
    seq = served["score_raw_sequential"]
    ratios: dict[str, object] = {
        "score_raw_p50_over_floor_p50": ratio(seq["p50_ms"], floor_p50),
        "target_p50_over_floor_max": 2.5,
    }
    if mlflow is not None:

        def over(ours: str, theirs: str) -> dict[str, float]:
            return {
                str(o["clients"]): ratio(o["throughput_rps"], m["throughput_rps"])
                for o, m in zip(served[ours], mlflow[theirs], strict=True)
            }

        ratios["mlflow_raw_p50_ms"] = mlflow["raw_sequential"]["p50_ms"]
        ratios["score_raw_p50_over_mlflow_raw_p50"] = ratio(
            seq["p50_ms"], mlflow["raw_sequential"]["p50_ms"]
        )
        ratios["throughput_over_mlflow_same_raw_input"] = {
            "workers_1": over("score_raw_concurrent", "raw_concurrent"),
            "workers_2": over("score_raw_concurrent_w2", "raw_w2_concurrent"),
        }
        ratios["throughput_over_mlflow_feature_rows"] = {
            "raw_records_vs_feature_rows_w1": over("score_raw_concurrent", "vector_concurrent"),
            "feature_vector_vs_feature_rows_w1": over(
                "score_vector_concurrent", "vector_concurrent"
            ),
        }
        ratios["target_throughput_over_mlflow_min"] = 3.0
    ratios["adaptive_batching_gain_workers_2"] = {
        str(o["clients"]): ratio(o["throughput_rps"], n["throughput_rps"])
        for o, n in zip(
            served["score_raw_concurrent_w2"],
            served["score_raw_concurrent_w2_no_batching"],
            strict=True,
        )
    }
    result = {
        "benchmark": "serving",
        "endpoint": "POST /score from raw records (features -> pred_contrib -> reasons), audited",
        "service": args.service,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "workload": {
            "customers": len(bodies),
            "transactions_per_customer": list(TRANSACTION_MIX),
            "statements_per_customer": 12,
            "facilities": 5,
            "instalments_per_facility": 36,
            "mean_body_kb": round(float(np.mean([len(b) for b in raw])) / 1024, 1),
            "mean_vector_body_kb": round(float(np.mean([len(b) for b in vectors])) / 1024, 2),
            "model": model_shape(model),
            "workers": "1 and 2 for both servers (same count compared)",
            "adaptive_batching": "on (serving.batching); off measured with 2 workers",
            "load_generator": (
                f"wrk, {GENERATOR['seconds']} s per measurement"
                if GENERATOR["name"] == "wrk"
                else "httpx threads"
            )
            + ", on the same 2 cores as the server under test",
            "audit": "SQLite WAL, synchronous=FULL, one record per decision",
        },
        "in_process": floor,
        "bentoml": served,
        "mlflow_models_serve": mlflow,
        "ratios": ratios,
        "batching_vs_baseline": baseline,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
