"""Workers end with their supervisor; ``serve`` names whoever holds its port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from reliability.server import descendants
from serving.audit import verify
from serving.auth import create_token
from serving.batch import request_example
from serving.ports import PortUnavailableError, check_port_free, port_holders
from serving.watchdog import SUPERVISOR_ENV, Watchdog, process_alive, supervisor_pid
from tests.serving.conftest import auth
from tests.serving.factory import free_port, serve_process

ROOT = Path(__file__).resolve().parents[2]


def _wait_gone(pids: list[int], timeout_s: float = 60) -> list[int]:
    """Poll until every pid has exited (or the generous deadline passes); those still alive."""
    deadline = time.monotonic() + timeout_s
    alive = [pid for pid in pids if process_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if process_alive(pid)]
    return alive


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_given_supervisor_when_it_dies_then_the_watch_reports_it_once():
    # Given a watchdog on a live process that is not our parent (the polling path)
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    lost = threading.Event()
    watchdog = Watchdog(supervisor.pid, os.getppid(), interval_s=0.05, on_lost=lost.set)
    watchdog.start()
    try:
        assert not watchdog.supervisor_gone()
        # When it is killed with SIGKILL
        supervisor.kill()
        supervisor.wait()
        # Then the watch calls back
        assert lost.wait(30)
        assert watchdog.supervisor_gone()
    finally:
        watchdog.stop()
        supervisor.kill()


def test_given_supervisor_variable_when_read_then_only_a_parent_or_a_dead_pid_counts():
    parent = os.getppid()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        assert supervisor_pid({}) == parent
        assert supervisor_pid({SUPERVISOR_ENV: str(parent)}) == parent
        assert supervisor_pid({SUPERVISOR_ENV: "abc"}) == parent
        assert supervisor_pid({SUPERVISOR_ENV: "1"}) == parent
        # A live process that is not our parent: an inherited value, ignored
        assert supervisor_pid({SUPERVISOR_ENV: str(other.pid)}) == parent
    finally:
        other.kill()
        other.wait()
    # A supervisor that is gone already: watched, so that the worker stops at once
    assert supervisor_pid({SUPERVISOR_ENV: str(other.pid)}) == other.pid
    assert not process_alive(other.pid)


_CHILD = """
import signal, sys, time
from serving.watchdog import start_watchdog

def stop(*_):
    open(sys.argv[1], "w").write("stopped")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
start_watchdog(interval_s=0.2)
open(sys.argv[2], "w").write("watching")
time.sleep(120)
"""

_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_given_worker_in_its_own_session_when_parent_gets_sigkill_then_worker_stops(tmp_path):
    # Given a parent whose child runs in a session of its own (as BentoML starts workers)
    stopped, watching = tmp_path / "stopped", tmp_path / "watching"
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _CHILD, str(stopped), str(watching)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not watching.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watching.exists()
        # When the parent is killed with SIGKILL (no cleanup of its own runs)
        parent.kill()
        parent.wait()
        # Then the child gets SIGTERM, stops through its handler, and is gone
        assert _wait_gone([child]) == []
        assert stopped.read_text() == "stopped"
    finally:
        _kill([child])
        parent.kill()


def test_given_port_held_when_checked_then_error_names_the_holding_process():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert (os.getpid(), port_holders(port)[0][1]) == port_holders(port)[0]
        with pytest.raises(
            PortUnavailableError, match=f"port {port} on 127.0.0.1 .* {os.getpid()}"
        ):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)
    with pytest.raises(PortUnavailableError, match="'localhost' is not an IP address"):
        check_port_free("localhost", port)


def test_given_port_held_when_serve_runs_then_one_error_line_and_exit_2(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [str(Path(sys.executable).with_name("riskgrade")), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "COLUMNS": "400"},
            check=False,
        )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: port {port} on 127.0.0.1 is already in use by process ")
    assert f"process {os.getpid()} (" in line


@pytest.mark.slow
def test_given_riskgrade_serve_killed_with_sigkill_when_restarted_then_no_orphan_and_no_loss(
    tmp_path, bundle, portfolio, as_of
):
    # Given `riskgrade serve` on a port, with a scorer token, answering decisions
    tokens = tmp_path / "tokens.json"
    scorer = create_token(tokens, "svc", "scorer")
    params = tmp_path / "params.yaml"
    paths = {"bundles": tmp_path / "bundles", "tokens": tokens, "audit_db": tmp_path / "audit.db"}
    params.write_text(yaml.safe_dump({"paths": {k: str(v) for k, v in paths.items()}}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("riskgrade")), "serve", "--port", str(port)]
    command += ["--bundle", str(bundle.path), "--params", str(params)]
    env = {
        **os.environ,
        "RISKGRADE_AUDIT_KEY": "test-key",
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    bodies = [request_example(portfolio, f"C{i:05d}", as_of) for i in range(6)]
    workers: list[int] = []
    try:
        with serve_process(command, env, base, timeout_s=240) as supervisor:
            workers = descendants(supervisor.pid)
            assert workers
            answered = [
                httpx.post(f"{base}/score", json=b, headers=auth(scorer), timeout=60)
                for b in bodies
            ]
            assert [r.status_code for r in answered] == [200] * len(bodies)
            # When only the supervisor is killed with SIGKILL
            os.kill(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
            # Then no worker outlives it and the port is free again
            assert _wait_gone(workers) == []
            check_port_free("127.0.0.1", port)
        # And a restart on the same port serves
        with serve_process(command, env, base, timeout_s=240):
            again = httpx.post(f"{base}/score", json=bodies[0], headers=auth(scorer), timeout=60)
            assert again.status_code == 200
    finally:
        _kill(workers)
    # And every acknowledged decision is in one intact audit chain
    result = verify(tmp_path / "audit.db", key=b"test-key")
    assert result.ok and result.records == len(bodies) + 1
