import json

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.special import expit

from rating.calibration import PlattCalibration


def test_scaled_contributions_sum_to_calibrated_log_odds_exactly():
    # Given raw SHAP rows (base last) and a Platt calibration
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 1.5, (200, 12))
    calibration = PlattCalibration(a=0.83, b=-0.41)
    margin = raw.sum(axis=1)
    # When the contributions are scaled
    scaled = calibration.scale_contributions(raw)
    # Then each row sums to a*margin + b, and the base became a*base + b
    np.testing.assert_allclose(scaled.sum(axis=1), calibration.log_odds(margin), rtol=0, atol=1e-9)
    np.testing.assert_allclose(scaled[:, -1], 0.83 * raw[:, -1] - 0.41, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        calibration.pd_from_margin(margin), expit(scaled.sum(axis=1)), atol=1e-12
    )
    # And the input is untouched
    assert raw.sum(axis=1) == pytest.approx(margin)


def test_single_row_is_scaled_too():
    row = np.array([0.5, -0.25, -2.0])
    scaled = PlattCalibration(a=2.0, b=1.0).scale_contributions(row)
    assert scaled.tolist() == [1.0, -0.5, -3.0]


def test_calibration_round_trips_through_json():
    calibration = PlattCalibration(a=0.9123456789012345, b=-1e-17)
    again = PlattCalibration.model_validate(json.loads(json.dumps(calibration.model_dump())))
    assert again == calibration


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [(0.0, 0.0, "must be > 0"), (-1.0, 0.0, "must be > 0"), (1.0, float("nan"), "finite")],
)
def test_invalid_parameters_are_rejected(a, b, message):
    with pytest.raises(ValidationError, match=message):
        PlattCalibration(a=a, b=b)


def test_contributions_without_base_column_are_rejected():
    with pytest.raises(ValueError, match="base last"):
        PlattCalibration().scale_contributions(np.zeros((3, 1)))
