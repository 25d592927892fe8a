"""SHAP plots of the validation report: shap.Explanation from the model's own pred_contrib."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from rating.calibration import PlattCalibration
from training import plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (600, 4))
    x[::17, 2] = np.nan
    logit = -1.5 + 1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.3 * np.nan_to_num(x[:, 2])
    y = (rng.random(600) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "verbose": -1, "seed": 0, "deterministic": True}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=40)
    return booster, x, ["debt_ratio", "current_ratio", "max_dpd_12m", "noise"]


def test_given_pred_contrib_when_explained_then_values_plus_base_are_the_log_odds(small_model):
    # Given a small LightGBM model, its own pred_contrib and a Platt calibration
    booster, x, names = small_model
    contribs = booster.predict(x, pred_contrib=True)
    margin = booster.predict(x, raw_score=True)
    platt = PlattCalibration(a=0.7, b=-1.2)
    # When the Explanation is built, raw and calibrated
    raw = plots.shap_explanation(contribs, x, names)
    calibrated = plots.shap_explanation(contribs, x, names, platt)
    # Then values and base come from pred_contrib (features, then the base column)
    np.testing.assert_array_equal(raw.values, contribs[:, :-1])
    np.testing.assert_array_equal(raw.base_values, contribs[:, -1])
    assert list(raw.feature_names) == names
    np.testing.assert_array_equal(raw.data, x)
    # And each row is additive: values + base = the model's log-odds, raw and calibrated
    np.testing.assert_allclose(raw.values.sum(axis=1) + raw.base_values, margin, atol=1e-9)
    np.testing.assert_allclose(
        calibrated.values.sum(axis=1) + calibrated.base_values, platt.log_odds(margin), atol=1e-9
    )


def test_given_an_explanation_when_plotted_then_waterfall_beeswarm_and_dependence_are_pngs(
    small_model,
):
    booster, x, names = small_model
    explanation = plots.shap_explanation(booster.predict(x, pred_contrib=True), x, names)
    # The strongest features come first
    top = plots.top_features(explanation, 2)
    assert top == ["debt_ratio", "current_ratio"]
    # And shap's three plots render as PNG
    for png in (
        plots.shap_waterfall_plot(explanation, 0),
        plots.shap_beeswarm_plot(explanation),
        plots.shap_dependence_plot(explanation, top[0]),
    ):
        assert png.startswith(PNG) and len(png) > 5000


def test_given_mismatched_shapes_when_explained_then_the_error_names_them(small_model):
    booster, x, names = small_model
    contribs = booster.predict(x, pred_contrib=True)
    with pytest.raises(ValueError, match=r"must be \(rows, features \+ 1\)"):
        plots.shap_explanation(contribs[:, :-1], x, names)
