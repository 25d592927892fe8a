from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import DatasetConfig, build_dataset
from features.catalog import FEATURE_SPEC
from features.io import RawTables
from features.quality import (
    QualityError,
    code_information_value,
    code_psi,
    feature_quality,
    render_quality_report,
)


@pytest.fixture(scope="module")
def quality(generated_raw: RawTables) -> pd.DataFrame:
    config = DatasetConfig(first_snapshot=date(2020, 12, 31), last_snapshot=date(2024, 12, 31))
    dataset = build_dataset(generated_raw, config)
    return feature_quality(dataset, FEATURE_SPEC).set_index("feature")


def test_delinquency_and_leverage_separate_defaulters(quality: pd.DataFrame) -> None:
    # Given generated data where default follows a latent health that drives every record
    # Then delinquency and leverage features rank defaulters above performers
    for name in ("max_dpd_12m", "overdue_rate_12m", "debt_ratio"):
        assert quality.loc[name, "auc_directional"] > 0.6, name
        assert quality.loc[name, "iv"] > 0.1, name


def test_quality_table_shape_and_ranges(quality: pd.DataFrame) -> None:
    assert list(quality.index) == FEATURE_SPEC.names
    assert quality["missing_share"].between(0, 1).all()
    assert (quality["auc_max"] >= 0.5).all() or quality["auc_max"].isna().any()
    down = quality["risk_direction"] == "down"
    np.testing.assert_allclose(
        quality.loc[down, "auc_directional"], 1 - quality.loc[down, "auc"], equal_nan=True
    )
    assert (quality["psi_first_last"] >= 0).all()


def test_iv_and_psi_by_hand() -> None:
    # A feature that splits perfectly has a large IV; a constant one has none
    label = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    assert code_information_value(np.array([0, 0, 0, 0, 1, 1, 1, 1]), label) > 2.0
    assert code_information_value(np.zeros(8, dtype=int), label) == pytest.approx(0.0)
    # PSI is 0 for identical bins and grows with the shift
    same = np.array([0, 1, 2, 3] * 5)
    assert code_psi(same, same) == pytest.approx(0.0)
    assert code_psi(same, np.array([0] * 20)) > 1.0


def test_missing_label_is_named() -> None:
    with pytest.raises(QualityError, match="no 'default_12m' column"):
        feature_quality(pd.DataFrame({"snapshot_date": [], "debt_ratio": []}), FEATURE_SPEC)


def test_report_is_self_contained(quality: pd.DataFrame, tmp_path: Path) -> None:
    path = render_quality_report(quality.reset_index(), tmp_path / "quality.html")
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "http://" not in page and "https://" not in page
    assert "max_dpd_12m" in page
