"""Security basics: pickle refused, tokens required, tokens never logged, pip-audit."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from reliability.server import ROOT, Server, Workspace

PROBES = ("/livez", "/readyz", "/healthz")
"""Routes meant to answer without a token."""

API_ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/score"),
    ("POST", "/score_batch"),
    ("POST", "/explain"),
    ("GET", "/model"),
    ("GET", "/audit/verify"),
    ("GET", "/audit/1"),
    ("POST", "/audit/1/replay"),
    ("POST", "/admin/reload"),
    ("GET", "/review/api/facets"),
    ("GET", "/review/api/decisions"),
    ("GET", "/review/api/decisions/1"),
    ("GET", "/review/api/chain"),
    ("GET", "/review/api/export"),
    ("GET", "/review/api/report/0"),
)

BENTOML_ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/"),
    ("GET", "/docs.json"),
    ("GET", "/schema.json"),
    ("GET", "/metrics"),
    ("GET", "/static_content/index.css"),
)
"""BentoML's own routes: they need a token too (``/metrics`` unless RISKGRADE_METRICS_PUBLIC)."""

PUBLIC_ASSETS = ("/review/", "/review/static/review.js")
"""The review page and its script: no decision data (that comes from /review/api, auditor)."""

PICKLE_TYPES = (
    "application/vnd.bentoml+pickle",
    "application/vnd.bentoml.multiple_outputs",
    "application/octet-stream",
    "application/x-python-pickle",
)


class _Marker:
    """Unpickling this creates a file: proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def pickle_refused(server: Server, ws: Workspace, out: Path) -> dict[str, Any]:
    """POST pickled payloads under every pickle-ish content type: 415, nothing unpickled."""
    marker = out / "UNPICKLED"
    marker.unlink(missing_ok=True)
    payload = pickle.dumps(_Marker(str(marker)), protocol=5)
    rows = []
    for route in ("/score", "/score_batch", "/explain", "/admin/reload"):
        role = "admin" if route == "/admin/reload" else "scorer"
        for content_type in PICKLE_TYPES:
            response = httpx.post(
                server.base + route,
                content=payload,
                headers={**ws.auth(role), "Content-Type": content_type},
                timeout=10,
            )
            rows.append((route, content_type, response.status_code))
    refused = all(status == 415 for _, _, status in rows)
    return {
        "passed": refused and not marker.exists(),
        "attempts": len(rows),
        "all_415": refused,
        "unpickled": marker.exists(),
    }


def tokens_required(server: Server, ws: Workspace) -> dict[str, Any]:
    """Every API route answers 401 without a token and with a forged one; probes answer."""
    unauthenticated = []
    for method, path in API_ROUTES + BENTOML_ROUTES:
        for headers in ({}, {"Authorization": "Bearer rg_000000000000_" + "x" * 43}):
            response = httpx.request(
                method, server.base + path, headers=headers, json={}, timeout=10
            )
            if response.status_code != 401:
                unauthenticated.append(f"{method} {path} -> {response.status_code}")
    probes = {p: httpx.get(server.base + p, timeout=5).status_code for p in PROBES}
    public = {p: httpx.get(server.base + p, timeout=5).status_code for p in PUBLIC_ASSETS}
    with_token = {
        path: httpx.get(server.base + path, headers=ws.auth("auditor"), timeout=10).status_code
        for _, path in BENTOML_ROUTES
    }
    return {
        "passed": not unauthenticated
        and all(s == 200 for s in probes.values())
        and all(s == 200 for s in public.values())
        and all(s == 200 for s in with_token.values()),
        "bentoml_routes_with_a_token": with_token,
        "routes_checked": len(API_ROUTES) + len(BENTOML_ROUTES),
        "answered_without_valid_token": unauthenticated,
        "probes": probes,
        "public_routes_without_token": public,
    }


def tokens_never_logged(ws: Workspace, paths: list[Path]) -> dict[str, Any]:
    """Search every server log and audit database for any token or token secret."""
    secrets = [token for token in ws.tokens.values()]
    secrets += [token.split("_", 2)[2] for token in ws.tokens.values()]
    hits = []
    scanned = 0
    for path in paths:
        if not path.is_file():
            continue
        scanned += 1
        data = path.read_bytes()
        hits += [f"{path.name}" for secret in secrets if secret.encode() in data]
    bearer = []
    for path in paths:
        if path.is_file() and path.suffix == ".log":
            text = path.read_text(errors="replace")
            bearer += re.findall(r"Bearer\s+rg_[0-9a-f]{12}_\S+", text)[:3]
    return {
        "passed": not hits and not bearer and scanned > 0,
        "files_scanned": scanned,
        "hits": sorted(set(hits)),
    }


def pip_audit(out: Path) -> dict[str, Any]:
    """pip-audit over the locked requirements (exported from uv.lock), from the venv.

    The machine reaches package registries but not vulnerability databases: when no package
    could be audited the result says so (``db_reachable: false``) instead of passing.
    """
    requirements = out / "requirements.lock.txt"
    # make installs uv into .tools/ (not on PATH); a uv on PATH serves as well.
    uv = shutil.which("uv") or str(ROOT / ".tools/bin/uv")
    export = subprocess.run(
        [uv, "export", "--frozen", "--format", "requirements-txt", "--no-emit-project"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if export.returncode != 0:
        return {"passed": False, "problem": export.stderr[-500:]}
    requirements.write_text(export.stdout)
    report = out / "pip-audit.json"
    command = [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--no-deps"]
    command += ["--disable-pip", "--format", "json", "-o", str(report), "--progress-spinner", "off"]
    run = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=600, env=os.environ.copy()
    )
    if not report.exists():
        return {"passed": False, "problem": (run.stderr or run.stdout)[-500:]}
    deps = json.loads(report.read_text()).get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulns = [
        {"name": d["name"], "version": d["version"], "ids": [v["id"] for v in d["vulns"]]}
        for d in deps
        if d.get("vulns")
    ]
    audited = len(deps) - len(skipped)
    return {
        "passed": audited > 0 and not vulns,
        "db_reachable": audited > 0,
        "packages": len(deps),
        "audited": audited,
        "skipped": len(skipped),
        "skip_reason_sample": skipped[0]["skip_reason"] if skipped else None,
        "vulnerabilities": vulns,
        "note": (
            "vulnerability database unreachable from this machine (PyPI JSON API and OSV "
            "not served): nothing could be audited"
            if audited == 0
            else ""
        ),
    }
