"""Fixtures shared by every test package: one small generated portfolio on disk."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from features.synthetic import GeneratorConfig, generate

SAMPLE_AS_OF = date(2025, 12, 31)


@pytest.fixture(scope="session")
def sample_raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-customer portfolio (seed 7) written once per session; treat as read-only."""
    out = tmp_path_factory.mktemp("sample") / "raw"
    generate(GeneratorConfig(customers=400, seed=7), out)
    return out
