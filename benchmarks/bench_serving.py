"""Serving benchmark: /explain from raw records against a real ``bentoml serve`` on loopback.

Measures sequential latency (p50/p99) and throughput with 1, 8 and 32 concurrent clients
(bounded request counts), against the in-process floor (request -> features -> one
``pred_contrib`` pass, with and without the tier explanation) on the same customers.
Every served request commits an audit record (SQLite WAL, synchronous=FULL) before answering.
Writes ``benchmarks/results/serving.json``.

Usage: ``uv run python benchmarks/bench_serving.py [--requests 200] [--customers 40]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rating.model import RatingModel  # noqa: E402
from serving.auth import create_token  # noqa: E402
from serving.batch import request_example  # noqa: E402
from serving.engine import Engine  # noqa: E402
from serving.schemas import ExplainRequest  # noqa: E402
from tests.serving.factory import AS_OF, make_bundle, make_portfolio  # noqa: E402


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "n": len(samples),
    }


def in_process_floor(engine: Engine, bodies: list[dict], rounds: int) -> dict[str, object]:
    requests = [ExplainRequest.model_validate(b) for b in bodies]
    parse, feats, score, explain = [], [], [], []
    for _ in range(rounds):
        for body, request in zip(bodies, requests, strict=True):
            t0 = time.perf_counter()
            ExplainRequest.model_validate(body)
            t1 = time.perf_counter()
            rows = engine.features([request])
            t2 = time.perf_counter()
            result = engine.score(rows)
            t3 = time.perf_counter()
            engine.model.explain(result, 0)
            t4 = time.perf_counter()
            parse.append(t1 - t0)
            feats.append(t2 - t1)
            score.append(t3 - t2)
            explain.append(t4 - t3)
    total = np.add(np.add(feats, score), explain)
    return {
        "validate_request": percentiles(parse),
        "features": percentiles(feats),
        "pred_contrib_score": percentiles(score),
        "explain_on_tiers": percentiles(explain),
        "features_score_explain": percentiles(list(total)),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("bentoml serve exited early")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("service not ready in time")


def load(base: str, token: str, bodies: list[dict], clients: int, per_client: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker(offset: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=60) as client:
            for k in range(per_client):
                body = bodies[(offset + k) % len(bodies)]
                t0 = time.perf_counter()
                response = client.post("/explain", json=body, headers=headers)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=worker, args=(i * 7,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests")
    parser.add_argument("--transactions", type=int, default=1000, help="per customer")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    bundle = make_bundle(work / "bundle")
    raw = make_portfolio(
        args.customers,
        seed=21,
        n_facilities=5,
        n_instalments=36,
        n_transactions=args.transactions,
    )
    ids = sorted(raw.customers["customer_id"])
    bodies = [request_example(raw, cid, AS_OF) for cid in ids]
    body_kb = float(np.mean([len(json.dumps(b)) for b in bodies]) / 1024)

    engine = Engine(RatingModel(bundle))
    engine.features([ExplainRequest.model_validate(bodies[0])])  # warm-up
    floor = in_process_floor(engine, bodies, rounds=3)

    tokens = work / "tokens.json"
    token = create_token(tokens, "bench", "scorer")
    port = free_port()
    env = {
        **os.environ,
        "RISKGRADE_BUNDLE": str(bundle.path),
        "RISKGRADE_AUDIT_DB": str(work / "audit.db"),
        "RISKGRADE_TOKENS": str(tokens),
        "RISKGRADE_MAX_CONCURRENCY": "64",
        "BENTOML_HOME": str(work / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:RiskgradeService"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        load(base, token, bodies, clients=1, per_client=10)  # warm-up
        sequential = load(base, token, bodies, clients=1, per_client=args.requests)
        concurrency = [
            load(base, token, bodies, clients=c, per_client=max(4, 256 // c)) for c in (1, 8, 32)
        ]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)

    result = {
        "benchmark": "serving",
        "endpoint": "POST /explain (raw records -> features -> pred_contrib -> tiers), audited",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "workload": {
            "customers": args.customers,
            "transactions_per_customer": args.transactions,
            "facilities": 5,
            "instalments_per_facility": 36,
            "statements_per_customer": int(len(raw.financial_statements) / args.customers),
            "mean_body_kb": round(body_kb, 1),
            "bentoml_workers": 1,
        },
        "in_process_floor": floor,
        "served_sequential": sequential,
        "served_concurrent": concurrency,
        "overhead_vs_floor_p50_ms": round(
            sequential["p50_ms"] - floor["features_score_explain"]["p50_ms"], 3
        ),
    }
    out = ROOT / "benchmarks" / "results" / "serving.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
