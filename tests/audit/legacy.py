"""The audit store as it was before the ``audit`` package (``serving/audit.py`` at a commit).

Loaded from git (``git show COMMIT:serving/audit.py``) into a temporary module, so the fixture
logs and the benchmark compare against the exact code that wrote logs until then.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

LEGACY_COMMIT = "1fda6f7"
"""The last commit with ``serving/audit.py`` (main before the ``audit`` package)."""


def load_legacy_audit(commit: str = LEGACY_COMMIT, repo: Path | None = None) -> ModuleType:
    """Import ``serving/audit.py`` of ``commit`` as module ``legacy_audit`` (needs git)."""
    root = repo or Path(__file__).resolve().parents[2]
    source = subprocess.run(
        ["git", "show", f"{commit}:serving/audit.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="legacy-audit-")) / "legacy_audit.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("legacy_audit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["legacy_audit"] = module
    spec.loader.exec_module(module)
    return module
