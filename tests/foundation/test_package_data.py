"""The report templates ship inside the wheel (jinja2 loads them as package data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"


def _templates() -> set[str]:
    return {
        str(p.relative_to(ROOT))
        for package in ("features", "training", "monitoring")
        for p in (ROOT / package).glob("templates/*.j2")
    }


def test_given_the_source_tree_then_every_report_has_its_templates():
    assert {"features/templates/base.html.j2", "features/templates/macros.html.j2"} <= (
        _templates()
    )
    assert "training/templates/validation_report.html.j2" in _templates()


@pytest.mark.skipif(not UV.exists() and shutil.which("uv") is None, reason="needs uv")
def test_given_a_built_wheel_then_it_holds_every_template(tmp_path):
    # Given the project built as a wheel
    uv = str(UV) if UV.exists() else str(shutil.which("uv"))
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env=env,
    )
    (wheel,) = tmp_path.glob("*.whl")
    # Then every template file is inside it, next to its package
    names = set(zipfile.ZipFile(wheel).namelist())
    assert _templates() <= names
