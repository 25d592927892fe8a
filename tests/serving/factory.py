"""Seeded small portfolios and a tiny real model bundle for the serving tests and benchmark."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalog import FEATURE_SPEC, compute_features
from features.io import RawTables
from features.schema import CHANNELS, INDUSTRIES, REGIONS, SCHEMAS, SIZE_CLASSES
from features.spec import FeatureKind
from rating.bundle import Bundle, write_bundle
from rating.calibration import PlattCalibration
from rating.policy import RatingPolicy
from rating.scale import MasterScale

AS_OF = date(2024, 6, 30)


def make_portfolio(
    n: int = 60,
    *,
    seed: int = 7,
    as_of: date = AS_OF,
    n_statements: int = 8,
    n_facilities: int = 2,
    n_instalments: int = 12,
    n_transactions: int = 120,
) -> RawTables:
    """A random portfolio in the raw contract; every record dated on or before ``as_of``."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(as_of)
    ids = [f"C{i:05d}" for i in range(n)]
    founded = end - pd.to_timedelta(rng.integers(3 * 365, 30 * 365, n), unit="D")
    onboard = end - pd.to_timedelta(rng.integers(2 * 365, 3 * 365, n), unit="D")
    flags = rng.random((n, 3)) < 0.03
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "industry": rng.choice(INDUSTRIES, n),
            "region": rng.choice(REGIONS, n),
            "size_class": rng.choice(SIZE_CLASSES, n),
            "legal_form": "limited",
            "founded_date": np.minimum(founded, onboard),
            "onboarding_date": onboard,
            "sanctions_hit": flags[:, 0],
            "legal_enforcement": flags[:, 1],
            "fraud": flags[:, 2],
        }
    )
    health = rng.normal(size=n)

    rows = []
    for i, cid in enumerate(ids):
        assets = float(rng.uniform(1e6, 1e9))
        for k in range(n_statements):
            period_end = (end - pd.DateOffset(months=3 * (k + 1))) + pd.offsets.QuarterEnd(0)
            if period_end > end - pd.Timedelta(days=40):
                period_end -= pd.offsets.QuarterEnd(1)
            debt = float(np.clip(0.5 - 0.15 * health[i] + rng.normal(0, 0.05), 0.05, 1.5))
            current = assets * float(rng.uniform(0.2, 0.6))
            revenue = assets * float(rng.uniform(0.05, 0.4))
            rows.append(
                {
                    "customer_id": cid,
                    "period_end": period_end,
                    "published_date": period_end + pd.Timedelta(days=30),
                    "period_months": 3,
                    "audited": bool(k % 4 == 0),
                    "total_assets": assets,
                    "total_liabilities": assets * debt,
                    "current_assets": current,
                    "current_liabilities": current * float(rng.uniform(0.4, 1.5)),
                    "cash": current * float(rng.uniform(0.05, 0.5)),
                    "revenue": revenue,
                    "operating_costs": revenue * float(rng.uniform(0.7, 1.1)),
                    "net_income": revenue * float(rng.normal(0.05, 0.08)),
                    "operating_cash_flow": revenue * float(rng.normal(0.08, 0.1)),
                    "interest_expense": assets * debt * 0.04,
                }
            )
            assets *= float(rng.uniform(0.95, 1.05))
    statements = pd.DataFrame(rows).drop_duplicates(["customer_id", "period_end"])

    facilities, repayments = [], []
    for i, cid in enumerate(ids):
        for f in range(n_facilities):
            fid = f"{cid}-F{f}"
            opened = end - pd.Timedelta(days=int(rng.integers(400, 700)))
            limit = float(rng.uniform(1e5, 5e7))
            facilities.append(
                {
                    "facility_id": fid,
                    "customer_id": cid,
                    "facility_type": "term_loan",
                    "currency": "CNY",
                    "opened": opened,
                    "maturity_date": opened + pd.DateOffset(months=n_instalments + 12),
                    "limit": limit,
                    "outstanding": limit * 0.5,
                }
            )
            late_p = float(1 / (1 + np.exp(2.0 + 1.5 * health[i])))
            for k in range(n_instalments):
                due = opened + pd.DateOffset(months=k + 1)
                amount = limit / (n_instalments + 12)
                paid = None
                if due <= end and rng.random() > late_p * 0.3:
                    lag = int(rng.integers(0, 90)) if rng.random() < late_p else 0
                    paid = due + pd.Timedelta(days=lag)
                    if paid > end:
                        paid = None
                repayments.append(
                    {
                        "facility_id": fid,
                        "customer_id": cid,
                        "instalment_no": k + 1,
                        "due_date": due,
                        "amount_due": amount,
                        "paid_date": paid,
                        "amount_paid": amount if paid is not None else 0.0,
                    }
                )

    m = n * n_transactions
    owner = np.repeat(np.arange(n), n_transactions)
    ts = (
        end
        + pd.Timedelta(hours=23)
        - pd.to_timedelta(rng.integers(0, 400 * 24 * 60, m), unit="min")
    )
    transactions = pd.DataFrame(
        {
            "txn_id": [f"T{j:08d}" for j in range(m)],
            "customer_id": np.asarray(ids)[owner],
            "ts": ts,
            "amount": np.round(rng.lognormal(10 + 0.3 * health[owner], 1.0), 2) + 0.01,
            "direction": np.where(rng.random(m) < 0.5, "in", "out"),
            "counterparty_id": [f"P{k}" for k in rng.integers(0, 30, m)],
            "channel": rng.choice(CHANNELS, m),
        }
    )
    defaults = pd.DataFrame(
        {
            "customer_id": pd.Series([], dtype=str),
            "default_date": pd.Series([], dtype="datetime64[ns]"),
            "default_type": pd.Series([], dtype=str),
        }
    )
    tables = {
        "customers": customers,
        "financial_statements": statements,
        "credit_facilities": pd.DataFrame(facilities),
        "repayments": pd.DataFrame(repayments),
        "transactions": transactions,
        "defaults": defaults,
    }
    return RawTables(**{name: SCHEMAS[name].validate(frame) for name, frame in tables.items()})


def make_bundle(target: Path, *, seed: int = 3, n_customers: int = 400) -> Bundle:
    """Train a 20-tree LightGBM on a generated portfolio and write a real bundle."""
    raw = make_portfolio(n_customers, seed=seed, n_transactions=40)
    frame = compute_features(raw, AS_OF)
    x = np.ascontiguousarray(frame[FEATURE_SPEC.names].to_numpy(dtype=np.float64))
    rng = np.random.default_rng(seed)
    names = FEATURE_SPEC.names

    def column(name: str) -> np.ndarray:
        return np.nan_to_num(x[:, names.index(name)], nan=0.0)

    signal = (
        4.0 * column("debt_ratio") + 0.05 * column("max_dpd_12m") - 0.3 * column("current_ratio")
    )
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(signal - np.median(signal) - 2.0)))).astype(float)
    cats = [j for j, f in enumerate(FEATURE_SPEC.features) if f.kind is FeatureKind.CATEGORICAL]
    params = {
        "objective": "binary",
        "num_leaves": 7,
        "learning_rate": 0.1,
        "min_data_in_leaf": 10,
        "deterministic": True,
        "seed": seed,
        "num_threads": 1,
        "verbose": -1,
    }
    data = lgb.Dataset(x, label=y, feature_name=names, categorical_feature=cats)
    booster = lgb.train(params, data, num_boost_round=20)
    return write_bundle(
        target,
        model_text=booster.model_to_string(),
        calibration=PlattCalibration(a=0.9, b=-0.2),
        scale=MasterScale(),
        policy=RatingPolicy(),
        spec=FEATURE_SPEC,
        reference={"note": "test bundle"},
        metadata={
            "version": "test-1",
            "trained_at": datetime(2024, 7, 1, tzinfo=UTC),
            "metrics": {"auc": 0.75},
        },
        overwrite=True,
    )


@functools.cache
def shared_asgi_app() -> object:
    """The service's ASGI app, built once per process.

    BentoML registers process-wide Prometheus metrics when it builds the app, so a second
    ``to_asgi()`` in the same test worker would fail; every TestClient context still runs the
    lifespan again, so each test gets a fresh service instance.
    """
    from serving.service import RiskgradeService

    return RiskgradeService.to_asgi()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_process(
    command: list[str], env: dict[str, str], base: str, *, timeout_s: float = 180
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a serving command in a session of its own; yields the process once ``base`` is ready.

    At the end the process's group gets SIGTERM (BentoML's supervisor then stops its workers),
    then SIGKILL if it has not ended within 20 s.
    """
    process = subprocess.Popen(
        command,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(f"{command[0]} serve did not become ready")
        if process.poll() is not None:
            raise AssertionError(f"{command[0]} serve exited with code {process.returncode}")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def asgi_serve(
    bundle_dir: Path, tokens: Path, workdir: Path, *, timeout_s: float = 60
) -> Iterator[str]:
    """Serve the service's ASGI app (what ``bentoml serve`` mounts) with uvicorn in a thread.

    For tests whose subject is what a client does over HTTP (the review page in a browser),
    not BentoML's process model: the same routes, settings and audit log as
    :func:`bentoml_serve`, without a server process to start. The settings are read from the
    environment when the app starts, so they are set for the block and restored after it.
    """
    import threading

    import uvicorn

    env = {
        "RISKGRADE_BUNDLE": str(bundle_dir),
        "RISKGRADE_AUDIT_DB": str(workdir / "audit.db"),
        "RISKGRADE_TOKENS": str(tokens),
        "RISKGRADE_AUDIT_KEY": "test-key",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    port = free_port()
    config = uvicorn.Config(
        shared_asgi_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="asgi-serve", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the in-process server did not start")
            time.sleep(0.05)
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def bentoml_serve(
    bundle_dir: Path,
    tokens: Path,
    workdir: Path,
    *,
    timeout_s: float = 90,
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``bentoml serve`` on loopback until the block ends; yields the base URL once ready.

    The audit log goes to ``workdir/audit.db`` (checkpoint key ``test-key``).
    """
    port = free_port()
    env = {
        **os.environ,
        "RISKGRADE_BUNDLE": str(bundle_dir),
        "RISKGRADE_AUDIT_DB": str(workdir / "audit.db"),
        "RISKGRADE_TOKENS": str(tokens),
        "RISKGRADE_AUDIT_KEY": "test-key",
        "BENTOML_HOME": str(workdir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:RiskgradeService"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with serve_process(command, env, base, timeout_s=timeout_s):
        yield base
