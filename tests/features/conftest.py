from __future__ import annotations

import pytest

from features.io import RawTables
from features.synthetic import GeneratorConfig, generate_tables


@pytest.fixture(scope="session")
def generated_raw() -> RawTables:
    """A small generated portfolio (seeded), shared by the tests of this folder."""
    raw, _ = generate_tables(GeneratorConfig(customers=600, seed=7))
    return raw
