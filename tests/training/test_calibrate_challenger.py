import numpy as np
import pytest
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from features.metrics import auc
from features.spec import FeatureKind, RiskDirection
from training.calibrate import anchor_intercept, calibrate, fit_platt
from training.challenger import fit_bins, fit_scorecard
from training.config import CalibrationConfig, ChallengerConfig
from training.errors import TrainingError


def test_platt_recovers_a_known_calibration():
    # Given labels drawn from log-odds 0.7*margin - 1.2
    rng = np.random.default_rng(1)
    margin = rng.normal(0, 2, 40_000)
    y = (rng.random(margin.size) < expit(0.7 * margin - 1.2)).astype(int)
    # When Platt is fitted
    platt = fit_platt(margin, y)
    # Then it finds the slope and intercept
    assert platt.a == pytest.approx(0.7, abs=0.03)
    assert platt.b == pytest.approx(-1.2, abs=0.05)


def test_anchoring_sets_the_mean_training_pd_to_the_long_run_rate():
    rng = np.random.default_rng(2)
    margin = rng.normal(-2, 1, 5000)
    y = (rng.random(5000) < expit(margin)).astype(int)
    platt, rate = calibrate(margin, y, margin, y, CalibrationConfig(long_run_default_rate=0.03))
    assert rate == 0.03
    assert np.mean(platt.pd_from_margin(margin)) == pytest.approx(0.03, abs=1e-9)
    # the slope is kept, only the level moves
    assert platt.a == pytest.approx(fit_platt(margin, y).a)


def test_default_anchor_is_the_mean_training_label():
    rng = np.random.default_rng(3)
    margin = rng.normal(-2, 1, 3000)
    y = (rng.random(3000) < expit(margin)).astype(int)
    platt, rate = calibrate(margin[:1000], y[:1000], margin, y, CalibrationConfig())
    assert rate == pytest.approx(y.mean())
    assert np.mean(platt.pd_from_margin(margin)) == pytest.approx(y.mean(), abs=1e-9)


def test_platt_refuses_a_single_class():
    with pytest.raises(TrainingError, match="both classes"):
        fit_platt(np.arange(5.0), np.zeros(5))


def test_anchor_rejects_rates_outside_0_1():
    with pytest.raises(TrainingError, match=r"in \(0, 1\)"):
        anchor_intercept(
            fit_platt(np.array([0.0, 1, 2, 3]), np.array([0, 1, 0, 1])), np.zeros(3), 1.5
        )


def _wavy(seed: int = 4, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """A noisy feature whose risk rises with the value (with a wave), a twentieth missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = (rng.random(x.size) < expit(-2 + 0.8 * x + 0.6 * np.sin(4 * x))).astype(float)
    x[: n // 20] = np.nan
    return x, y


@pytest.mark.parametrize("binning", ["optbinning", "quantile"])
def test_woe_bins_are_monotone_in_the_risk_direction_and_missing_has_its_own_bin(binning):
    # Given a noisy feature whose risk rises with the value, with missing values
    x, y = _wavy()
    # When it is binned with a monotone constraint
    config = ChallengerConfig(binning=binning)
    bins = fit_bins(x, y, "f", FeatureKind.NUMERIC, RiskDirection.UP, config)
    # Then WOE (higher = less risky) decreases bin over bin, missing values get the missing WOE
    assert (np.diff(bins.woe) <= 0).all()
    assert len(bins.woe) == len(bins.edges) + 1 >= 3
    assert bins.iv > 0.1
    assert bins.transform(np.array([np.nan]))[0] == bins.woe_missing


@pytest.mark.parametrize("direction", [RiskDirection.DOWN, RiskDirection.NONE])
def test_optimal_bins_follow_the_direction_or_the_data_and_are_deterministic(direction):
    # Given a feature whose risk falls as the value rises
    x, y = _wavy(seed=5)
    x = -x
    config = ChallengerConfig(binning="optbinning")
    # When it is binned twice, told the direction or not
    first = fit_bins(x, y, "f", FeatureKind.NUMERIC, direction, config)
    again = fit_bins(x, y, "f", FeatureKind.NUMERIC, direction, config)
    # Then the bins are the same both times and WOE rises bin over bin (risk falls)
    np.testing.assert_array_equal(first.edges, again.edges)
    np.testing.assert_array_equal(first.woe, again.woe)
    assert len(first.woe) >= 3 and (np.diff(first.woe) >= 0).all()


def test_optimal_bins_put_a_value_on_a_split_where_optbinning_does():
    # Given optbinning's own binning of a feature, and values lying exactly on its splits
    from optbinning import OptimalBinning

    x, y = _wavy(seed=6)
    present = ~np.isnan(x)
    config = ChallengerConfig(binning="optbinning")
    reference = OptimalBinning(
        dtype="numerical",
        solver="cp",
        max_n_prebins=config.n_bins,
        min_prebin_size=config.min_bin_share,
        min_bin_size=config.min_bin_share,
        monotonic_trend="ascending",
    ).fit(x[present], y[present].astype(int))
    splits = np.asarray(reference.splits)
    # When the challenger bins the same rows
    bins = fit_bins(x, y, "f", FeatureKind.NUMERIC, RiskDirection.UP, config)
    # Then its bins are optbinning's: same count per bin, a split value in the upper bin
    probe = np.concatenate([x[present], splits])
    ours = np.searchsorted(bins.edges, probe, side="left")
    np.testing.assert_array_equal(ours, np.digitize(probe, splits, right=False))
    table = reference.binning_table.build()
    counts = table["Count"].to_numpy()[: len(splits) + 1].astype(int)
    np.testing.assert_array_equal(np.bincount(ours[: present.sum()]), counts)


@pytest.mark.parametrize("binning", ["optbinning", "quantile"])
def test_rare_defaults_do_not_reverse_the_smoothed_woe(binning):
    # Given rare defaults: 100 safe rows without a default, 2000 with one default, then risk
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(0, 1, 100), rng.uniform(1, 2, 2000), rng.uniform(2, 3, 2000)])
    y = np.zeros(x.size)
    y[100 + 1500] = 1.0
    y[2100:][rng.random(2000) < 0.4] = 1.0
    # When the feature is binned with small bins allowed
    config = ChallengerConfig(binning=binning, n_bins=41, min_bin_share=0.01)
    bins = fit_bins(x, y, "f", FeatureKind.NUMERIC, RiskDirection.UP, config)
    # Then the WOE, not only the raw bad rate, falls bin over bin: the score is monotone
    assert len(bins.woe) >= 2 and (np.diff(bins.woe) <= 0).all()


def test_categorical_bins_map_unknown_codes_to_the_missing_woe():
    x = np.array([0, 0, 1, 1, 2, 2, np.nan] * 50, dtype=float)
    y = np.array([0, 1, 0, 0, 1, 1, 0] * 50, dtype=float)
    bins = fit_bins(x, y, "c", FeatureKind.CATEGORICAL, RiskDirection.NONE, ChallengerConfig())
    woe = bins.transform(np.array([0.0, 1.0, 2.0, 7.0]))
    assert woe[2] < woe[0] < woe[1]  # code 2 is the riskiest, code 1 the safest
    assert woe[3] == bins.woe_missing


def test_woe_scorecard_ranks_risk(dataset, spec):
    x = dataset[spec.names].to_numpy(dtype=np.float64)
    y = dataset["default_12m"].to_numpy()
    card = fit_scorecard(x[:2000], y[:2000], spec, ChallengerConfig(), seed=0)
    pd_ = card.predict_pd(x[2000:])
    assert ((pd_ > 0) & (pd_ < 1)).all()
    assert auc(y[2000:].astype(float), pd_) > 0.65
    assert set(card.information_values()) == set(spec.names)


def test_flipping_the_woe_sign_flips_the_coefficients_and_keeps_the_predictions(dataset, spec):
    # Given a scorecard on WOE = ln(good share / bad share) (higher = less risky)
    x = dataset[spec.names].to_numpy(dtype=np.float64)
    y = dataset["default_12m"].to_numpy()
    config = ChallengerConfig()
    card = fit_scorecard(x[:2000], y[:2000], spec, config, seed=0)
    # When the same regression is fitted on the opposite convention, ln(bad share / good share)
    flipped = LogisticRegression(C=config.c, max_iter=config.max_iter, random_state=0)
    flipped.fit(-card.woe_matrix(x[:2000]), y[:2000])
    # Then only the coefficients' signs differ, and the PDs are the same
    np.testing.assert_allclose(flipped.coef_, -card.model.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        flipped.predict_proba(-card.woe_matrix(x[2000:]))[:, 1],
        card.predict_pd(x[2000:]),
        rtol=1e-6,
        atol=1e-9,
    )
