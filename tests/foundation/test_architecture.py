"""The package rules of DESIGN.md hold (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    kept = re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)
    assert kept is not None and int(kept.group(1)) >= 8, result.stdout


def test_the_cli_modules_form_no_import_cycle() -> None:
    # Given the acyclic-siblings contract over riskgrade (cli, cli_monitor, cli_common, ...)
    lint_imports = Path(sys.executable).with_name("lint-imports")

    # When import-linter checks it alone
    result = subprocess.run(
        [str(lint_imports), "--contract", "riskgrade-acyclic"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    # Then it is kept: no riskgrade module imports one that imports it back
    assert result.returncode == 0, result.stdout + result.stderr
    assert "form no import cycle" in result.stdout and "KEPT" in result.stdout
