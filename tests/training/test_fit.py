import numpy as np

from rating.calibration import PlattCalibration
from training.config import LgbmConfig, SplitConfig
from training.fit import fit_lgbm
from training.split import out_of_time_split


def _fit(dataset, spec, threads=1, seed=7):
    split = out_of_time_split(dataset["snapshot_date"], SplitConfig())
    x = dataset[spec.names].to_numpy(dtype=np.float64)
    y = dataset["default_12m"].to_numpy()
    config = LgbmConfig(
        num_boost_round=80, learning_rate=0.1, early_stopping_rounds=0, num_threads=threads
    )
    return fit_lgbm(
        x[split.train],
        y[split.train],
        x[split.calibration],
        y[split.calibration],
        spec,
        config,
        seed,
    ), x


def test_model_text_is_byte_identical_with_one_and_two_threads(dataset, spec):
    # Given the same data and seeds
    # When the model is trained with 1 and with 2 threads
    one, _ = _fit(dataset, spec, threads=1)
    two, _ = _fit(dataset, spec, threads=2)
    # Then the model text is the same bytes and carries no thread count
    assert one.model_text.encode() == two.model_text.encode()
    assert "num_threads" not in one.model_text
    assert "[deterministic: 1]" in one.model_text


def test_other_seed_gives_other_model(dataset, spec):
    assert _fit(dataset, spec, seed=1)[0].model_text != _fit(dataset, spec, seed=2)[0].model_text


def test_pd_never_decreases_as_max_dpd_increases(dataset, spec):
    # Given a fitted model with a +1 constraint on max_dpd_12m
    model, x = _fit(dataset, spec)
    j = spec.names.index("max_dpd_12m")
    rows = x[:50].copy()
    grid = np.array([0, 1, 5, 10, 30, 60, 90, 180, 365], dtype=float)
    # When only max_dpd_12m varies
    margins = []
    for value in grid:
        rows[:, j] = value
        margins.append(model.booster.predict(rows, raw_score=True))
    margins = np.array(margins)
    # Then the margin (hence the PD) never decreases along the grid, for every customer
    assert (np.diff(margins, axis=0) >= -1e-12).all()
    assert (margins[-1] > margins[0]).any()


def test_current_ratio_is_constrained_downwards(dataset, spec):
    model, x = _fit(dataset, spec)
    j = spec.names.index("current_ratio")
    rows = x[:50].copy()
    margins = []
    for value in np.linspace(0, 4, 12):
        rows[:, j] = value
        margins.append(model.booster.predict(rows, raw_score=True))
    assert (np.diff(np.array(margins), axis=0) <= 1e-12).all()


def test_platt_contributions_stay_additive_through_rating(dataset, spec):
    # Given a model and a Platt calibration
    model, x = _fit(dataset, spec)
    platt = PlattCalibration(a=0.8, b=-0.3)
    # When pred_contrib values are scaled by rating's calibration
    contribs = model.booster.predict(x[:100], pred_contrib=True)
    scaled = platt.scale_contributions(contribs)
    # Then they sum to the calibrated log-odds of the margin
    margin = model.booster.predict(x[:100], raw_score=True)
    np.testing.assert_allclose(scaled.sum(axis=1), platt.log_odds(margin), atol=1e-9)
