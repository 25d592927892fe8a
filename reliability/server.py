"""A real ``bentoml serve`` process on loopback with a tiny real bundle, tokens and audit db."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("scorer", "auditor", "admin")
AUDIT_KEY = "reliability-audit-key"


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (BentoML workers run in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Workspace:
    """Everything a reliability run shares: bundle, tokens, a portfolio and request bodies."""

    root: Path
    bundle: Path
    tokens_file: Path
    tokens: dict[str, str]
    bodies: list[dict[str, Any]]

    @classmethod
    def create(cls, root: Path, n_customers: int = 24) -> Workspace:
        """Build a tiny real bundle (tests/serving/factory.py), tokens and score bodies."""
        from serving.auth import create_token
        from serving.batch import request_example
        from tests.serving.factory import AS_OF, make_bundle, make_portfolio

        root.mkdir(parents=True, exist_ok=True)
        bundle = make_bundle(root / "bundle" / "champion").path
        tokens_file = root / "tokens.json"
        tokens_file.unlink(missing_ok=True)
        tokens = {role: create_token(tokens_file, f"{role}-user", role) for role in ROLES}
        raw = make_portfolio(n_customers, seed=11, n_transactions=60)
        ids = raw.customers["customer_id"].tolist()
        bodies = [request_example(raw, cid, AS_OF) for cid in ids]
        return cls(root, Path(bundle), tokens_file, tokens, bodies)

    def auth(self, role: str = "scorer") -> dict[str, str]:
        """The Authorization header of a role's token."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@dataclass
class Server:
    """One ``bentoml serve`` process group; logs go to ``log_path``."""

    workspace: Workspace
    audit_db: Path
    log_path: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        """Spawn the server in its own session (process group)."""
        env = {
            **os.environ,
            "RISKGRADE_BUNDLE": str(self.workspace.bundle),
            "RISKGRADE_AUDIT_DB": str(self.audit_db),
            "RISKGRADE_TOKENS": str(self.workspace.tokens_file),
            "RISKGRADE_AUDIT_KEY": AUDIT_KEY,
            "BENTOML_HOME": str(self.workspace.root / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "PYTHONPATH": str(ROOT),
            **self.env_extra,
        }
        command = [sys.executable, "-m", "bentoml", "serve", "serving.service:RiskgradeService"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 90.0) -> bool:
        """Poll /readyz until 200, the process exits, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        return False

    def signal(self, sig: int) -> None:
        """Send a signal to the server's main process (BentoML forwards it to its workers)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def _kill_tree(self) -> None:
        if self.process is None:
            return
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL (whole tree) after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        workers = descendants(self.process.pid)
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_tree()
                self.process.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return self.process.returncode

    def kill9(self) -> None:
        """SIGKILL the server and every worker at once (a crash: no cleanup runs)."""
        self._kill_tree()
        if self.process is not None:
            self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def dump(path: Path, value: Any) -> None:
    """Write JSON with a trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
