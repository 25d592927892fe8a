"""Model family: the scorecard and the blend as LightGBM text models, and the CV choice."""

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from features.spec import FeatureDef, FeatureGroup, FeatureSpec, RiskDirection
from rating.bundle import load_bundle
from rating.model import RatingModel
from training.challenger import fit_scorecard
from training.config import ChallengerConfig, FamilyConfig, GateConfig, LgbmConfig
from training.errors import TrainingError
from training.family import (
    FAMILIES,
    LGBM_FAMILIES,
    FamilyChoice,
    blend_model_text,
    fit_family_fixed,
    paired_gain,
    plain_config,
    scorecard_model_text,
    select_family,
)
from training.fit import fit_fixed_rounds, normalise_model_text
from training.pipeline import train_table
from training.table import table_matrix, table_spec

from .conftest import fast_config


@pytest.fixture(scope="module")
def fitted(dataset, spec):
    """A scorecard fitted on rows with missing and categorical values, and test rows that hit
    every bin edge exactly, a missing categorical and a code never seen in training."""
    x = dataset[spec.names].to_numpy(dtype=np.float64).copy()
    y = dataset["default_12m"].to_numpy()
    x[:40, 0] = np.nan
    card = fit_scorecard(x[:3000], y[:3000], spec, ChallengerConfig(), seed=0)
    rows = x[3000:].copy()
    rows[0, 0] = 7.0
    rows[1, 0] = np.nan
    for j, bins in enumerate(card.bins):
        if not bins.categorical:
            rows[10 : 10 + len(bins.edges), j] = bins.edges
    return card, x[:3000], y[:3000], rows


def test_converted_scorecard_predicts_exactly_the_sklearn_scorecard(fitted, spec):
    # Given a fitted WOE scorecard and its LightGBM text model
    card, x_train, _, rows = fitted
    booster = lgb.Booster(model_str=scorecard_model_text(card, spec, x_train))
    # When both score rows at bin edges, with missing values and an unseen category
    margin = booster.predict(rows, raw_score=True)
    # Then the logits and the PDs agree to 1e-9
    np.testing.assert_allclose(margin, card.logit(rows), rtol=0, atol=1e-9)
    np.testing.assert_allclose(expit(margin), card.predict_pd(rows), rtol=0, atol=1e-9)
    assert booster.num_trees() == sum(card.active)


def test_scorecard_contributions_are_each_features_own_term(fitted, spec):
    # Given the scorecard as a LightGBM model
    card, x_train, _, rows = fitted
    booster = lgb.Booster(model_str=scorecard_model_text(card, spec, x_train))
    contrib = booster.predict(rows, pred_contrib=True)
    # Then each row's contributions sum to its margin
    np.testing.assert_allclose(contrib.sum(axis=1), card.logit(rows), atol=1e-9)
    # And a feature's contribution is its term coef * WOE less one constant, its expectation
    # (the training mean; an empty missing bin counts as one row)
    j = spec.names.index("current_ratio")
    term = card.model.coef_[0, j] * card.bins[j].transform(rows[:, j])
    train_mean = card.model.coef_[0, j] * card.bins[j].transform(x_train[:, j]).mean()
    offset = term - contrib[:, j]
    assert np.ptp(offset) < 1e-9
    assert offset[0] == pytest.approx(train_mean, abs=1e-3)


def test_blend_is_the_weighted_sum_of_both_margins_and_stays_additive(fitted, spec):
    # Given a LightGBM model and a scorecard fitted on the same rows
    card, x_train, y_train, rows = fitted
    config = LgbmConfig(num_boost_round=40, learning_rate=0.1)
    booster = fit_fixed_rounds(x_train, y_train, spec, config, seed=0, rounds=40)
    lgbm_text = normalise_model_text(booster.model_to_string())
    # When they are blended 30/70 into one model text
    blend = lgb.Booster(
        model_str=blend_model_text(lgbm_text, scorecard_model_text(card, spec, x_train), 0.3)
    )
    # Then it predicts 0.3 * LightGBM margin + 0.7 * scorecard logit, and SHAP stays additive
    expected = 0.3 * booster.predict(rows, raw_score=True) + 0.7 * card.logit(rows)
    margin = blend.predict(rows, raw_score=True)
    np.testing.assert_allclose(margin, expected, atol=1e-9)
    contrib = blend.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), margin, atol=1e-9)


def test_wrong_sign_coefficient_of_a_directed_feature_is_left_out():
    # Given a risk-up feature b that mostly repeats a, while the outcome rises with a - b/2
    rng = np.random.default_rng(3)
    a = rng.normal(size=6000)
    b = a + rng.normal(scale=0.3, size=a.size)
    y = (rng.random(a.size) < expit(-2 + 2.0 * a - 1.5 * b)).astype(int)
    spec = FeatureSpec(
        version="t",
        features=tuple(
            FeatureDef(
                name=n,
                group=FeatureGroup.FINANCIAL,
                description=n,
                description_zh=n,
                unit="x",
                risk_direction=RiskDirection.UP,
            )
            for n in ("a", "b")
        ),
    )
    # When the scorecard is fitted (monotone by default)
    card = fit_scorecard(np.column_stack([a, b]), y, spec, ChallengerConfig(), seed=0)
    # Then no active directed feature runs against its direction, and b is left out
    coef = card.model.coef_[0]
    assert all(c <= 0 for c, on in zip(coef, card.active, strict=True) if on)  # WOE: up = safer
    assert card.active == (True, False)


def _table(rows: int, seed: int, nonlinear: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8))
    if nonlinear:  # the sign of a product: invisible to any additive model
        logit = 3.0 * np.sign(x[:, 0] * x[:, 1]) - 1.0
    else:  # many small additive effects
        logit = -1.2 + x @ np.linspace(0.8, 0.3, 8)
    y = rng.random(rows) < expit(logit)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    frame["grade"] = rng.choice(["a", "b", "c"], size=rows)
    frame["bad"] = y.astype(int)
    return frame


def _config(choice: str = "auto"):
    return fast_config().model_copy(update={"family": FamilyConfig(choice=choice, cv_folds=4)})


def test_auto_ships_the_scorecard_on_a_table_of_linear_signal(tmp_path):
    # Given a table whose default odds are linear in the features (at 600 rows the inner folds
    # cannot tell the families apart and the rule keeps the reference)
    frame = _table(2000, seed=1, nonlinear=False)
    # When it is trained in auto mode (one-standard-error rule)
    result = train_table(frame, "bad", config=_config(), out_dir=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # Then the scorecard (alone or blended) ships: it beats the configured LightGBM (the
    # reference) by more than one standard error of the per-fold difference
    family = metrics["model.family"]
    assert family in ("scorecard", "blend")
    assert (metrics["model.family_rule"], metrics["model.family_reference"]) == (
        "one_se",
        "ensemble",
    )
    assert metrics[f"cv.{family}.auc_gain"] > metrics[f"cv.{family}.auc_gain_se"] > 0.0
    assert metrics[f"cv.{family}.auc_mean"] > metrics["cv.lgbm_plain.auc_mean"]
    assert 0.0 <= metrics["model.blend_weight"] < 1.0
    assert result.metrics["model.family"] == family
    # And metrics.json holds every candidate's CV AUC and gain over the reference
    for candidate in FAMILIES:
        assert 0.5 < metrics[f"cv.{candidate}.auc_mean"] <= 1.0
        assert (f"cv.{candidate}.auc_gain" in metrics) == (candidate != "ensemble")


@pytest.mark.slow
def test_auto_keeps_lightgbm_on_a_strongly_non_linear_table(tmp_path):
    # Given a table whose risk is an interaction of two features
    frame = _table(3000, seed=2, nonlinear=True)
    # When it is trained in auto mode
    result = train_table(frame, "bad", config=_config(), out_dir=tmp_path)
    m = result.metrics
    # Then a LightGBM ships (alone or in a blend, whose ranking its trees carry), well ahead of
    # the scorecard, whose gain over the reference (the LightGBM ensemble) is negative
    family = m["model.family"]
    assert family in (*LGBM_FAMILIES, "blend")
    assert m[f"cv.{family}.auc_mean"] > m["cv.scorecard.auc_mean"] + 0.1
    assert m["cv.lgbm.auc_mean"] > m["cv.scorecard.auc_mean"] + 0.1
    assert m["cv.scorecard.auc_gain"] < 0.0
    # And every candidate's cross-validated AUC is recorded (the additive scorecard's near 0.5)
    for family in FAMILIES:
        assert 0.0 <= m[f"cv.{family}.auc_std"] < m[f"cv.{family}.auc_mean"] <= 1.0
    assert m["cv.scorecard.auc_mean"] < 0.55


def test_one_se_rule_keeps_the_reference_unless_another_is_clearly_better():
    # Given fold AUCs where the blend has the best mean only by one lucky fold, and the
    # scorecard is a little but consistently better than the plain LightGBM
    noisy = {
        "lgbm": (0.80, 0.81, 0.79, 0.80, 0.80),
        "blend": (0.79, 0.80, 0.78, 0.79, 0.87),
    }
    consistent = {**noisy, "scorecard": (0.805, 0.816, 0.794, 0.806, 0.804)}
    # When the rules pick
    # Then "best" follows the lucky mean, one_se keeps the reference
    assert select_family(noisy, "best") == "blend"
    assert select_family(noisy, "one_se") == "lgbm"
    # And a consistent gain beats the reference although the blend's mean is higher
    assert select_family(consistent, "one_se") == "scorecard"
    gain, se = paired_gain(consistent["scorecard"], consistent["lgbm"])
    assert gain == pytest.approx(0.005) and 0.0 < se < gain
    # And a stricter multiplier keeps the reference again; 0 takes the best of those ahead;
    # another reference is measured against in the same way
    assert select_family(consistent, "one_se", se_multiplier=20.0) == "lgbm"
    assert select_family(consistent, "one_se", se_multiplier=0.0) == "blend"
    assert select_family(consistent, "one_se", reference="scorecard") == "scorecard"


def test_one_se_rule_refuses_an_unknown_rule_or_a_missing_reference():
    scores = {"lgbm": (0.7, 0.8), "scorecard": (0.7, 0.75)}
    with pytest.raises(TrainingError, match="unknown family selection rule 'median'"):
        select_family(scores, "median")
    with pytest.raises(TrainingError, match="reference candidate 'lgbm_plain'"):
        select_family(scores, "one_se", reference="lgbm_plain")


def test_plain_candidate_is_the_plain_lightgbm_baseline():
    # Given a table without known risk directions
    frame = _table(1500, seed=4, nonlinear=True).drop(columns="grade")
    columns = [c for c in frame.columns if c != "bad"]
    spec = table_spec(frame, columns)
    x, y = table_matrix(frame, columns, spec), frame["bad"].to_numpy()
    # When the plain family is fitted
    choice = FamilyChoice(family="lgbm_plain", weight=1.0, choice="lgbm_plain", lgbm_trees=50)
    ours = fit_family_fixed(x[:1000], y[:1000], spec, _config(), choice)
    # Then it predicts exactly what LightGBM with its defaults, 400 trees at 0.03, predicts
    params = {"objective": "binary", "learning_rate": 0.03, "verbosity": -1, "num_threads": 1}
    plain = lgb.train(params, lgb.Dataset(x[:1000], y[:1000]), num_boost_round=400)
    assert ours.num_trees() == 400
    np.testing.assert_array_equal(
        ours.predict(x[1000:], raw_score=True), plain.predict(x[1000:], raw_score=True)
    )


@pytest.mark.slow
def test_auto_choice_gives_the_same_model_file_twice(tmp_path):
    # Given one table trained twice in auto mode
    frame = _table(800, seed=5, nonlinear=False)
    first = train_table(frame, "bad", config=_config(), out_dir=tmp_path / "a")
    second = train_table(frame, "bad", config=_config(), out_dir=tmp_path / "b")
    # Then the family, its CV figures and the model file are identical
    assert first.metrics["model.family"] == second.metrics["model.family"]
    cv = {k: v for k, v in first.metrics.items() if k.startswith("cv.")}
    assert cv == {k: v for k, v in second.metrics.items() if k.startswith("cv.")}
    model = (first.bundle_dir / "model.txt").read_bytes()
    assert model == (second.bundle_dir / "model.txt").read_bytes()


def test_scorecard_bundle_verifies_scores_and_explains_through_rating(tmp_path):
    # Given a bundle of the scorecard family
    frame = _table(600, seed=1, nonlinear=False)
    result = train_table(frame, "bad", config=_config("scorecard"), out_dir=tmp_path)
    assert result.metrics["model.family"] == "scorecard"
    # When rating loads it (manifest verified against the registered hash) and scores
    bundle = load_bundle(result.bundle_dir, expected_hash=result.bundle_sha256)
    model = RatingModel(bundle)
    matrix = table_matrix(frame, [c for c in frame.columns if c != "bad"], bundle.spec)[:50]
    flags = {f: np.zeros(len(matrix)) for f in model.policy.flag_names}
    scored = model.score(matrix, flags=flags)
    # Then the calibrated log-odds are Platt of the scorecard logit, additive over features
    margin = model.booster.predict(matrix, raw_score=True)
    cal = bundle.calibration
    np.testing.assert_allclose(scored.log_odds, cal.a * margin + cal.b, atol=1e-9)
    np.testing.assert_allclose(
        scored.contributions.sum(axis=1) + scored.base, scored.log_odds, atol=1e-9
    )
    # And a feature's contribution changes with that feature only
    moved = matrix.copy()
    k = bundle.spec.names.index("x0")
    moved[:, k] += 1.0
    again = model.score(moved, flags=flags)
    others = [j for j in range(matrix.shape[1]) if j != k]
    np.testing.assert_allclose(
        again.contributions[:, others], scored.contributions[:, others], atol=1e-12
    )
    # And the explanation runs on the tiers
    explanation = model.explain(scored, 0)
    assert explanation.log_odds == pytest.approx(scored.log_odds[0])
    assert explanation.base_log_odds == pytest.approx(scored.base[0])


def test_ensemble_is_the_mean_of_both_lightgbm_margins_and_stays_additive():
    # Given a table and the two LightGBM settings (configured, plain)
    frame = _table(1200, seed=6, nonlinear=True).drop(columns="grade")
    columns = [c for c in frame.columns if c != "bad"]
    spec = table_spec(frame, columns)
    x, y = table_matrix(frame, columns, spec), frame["bad"].to_numpy()
    config = _config()
    # When the ensemble family is fitted with 30 configured trees
    choice = FamilyChoice(family="ensemble", weight=1.0, choice="ensemble", lgbm_trees=30)
    ours = fit_family_fixed(x[:900], y[:900], spec, config, choice)
    # Then its margin is the mean of the configured and the plain LightGBM margins
    configured = fit_fixed_rounds(x[:900], y[:900], spec, config.lgbm, config.seed, 30)
    plain = fit_fixed_rounds(
        x[:900], y[:900], spec, plain_config(config), config.seed, config.family.plain_rounds
    )
    rows = x[900:]
    expected = 0.5 * configured.predict(rows, raw_score=True) + 0.5 * plain.predict(
        rows, raw_score=True
    )
    margin = ours.predict(rows, raw_score=True)
    np.testing.assert_allclose(margin, expected, atol=1e-9)
    assert ours.num_trees() == 30 + config.family.plain_rounds
    # And the SHAP contributions add up to it
    contrib = ours.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(contrib.sum(axis=1), margin, atol=1e-9)


def test_a_dropped_family_gives_way_to_the_next_by_the_same_rule():
    # Given a choice made by one_se around the ensemble, where the blend won clearly
    fold_auc = {
        "ensemble": (0.80, 0.81, 0.79, 0.80, 0.80),
        "lgbm": (0.79, 0.80, 0.78, 0.79, 0.79),
        "scorecard": (0.805, 0.816, 0.794, 0.806, 0.804),
        "blend": (0.81, 0.82, 0.80, 0.81, 0.81),
    }
    chosen = select_family(fold_auc, "one_se", reference="ensemble")
    choice = FamilyChoice(
        family=chosen,
        weight=0.4,
        choice="auto",
        lgbm_trees=50,
        rule="one_se",
        reference="ensemble",
        folds=5,
        fold_auc=fold_auc,
        blend_cv_weight=0.4,
    )
    assert chosen == "blend"
    # When the blend is dropped (its model failed a gate), then the scorecard
    second = choice.without("blend", 1.0)
    assert second is not None
    assert (second.family, second.weight, second.dropped) == ("scorecard", 0.0, ("blend",))
    third = second.without("scorecard", 1.0)
    assert third is not None
    # Then the reference is next, then the remaining candidate, then nothing is left
    assert (third.family, third.weight) == ("ensemble", 1.0)
    fourth = third.without("ensemble", 1.0)
    assert fourth is not None and fourth.family == "lgbm"
    assert fourth.without("lgbm", 1.0) is None
    # And the drops are recorded; a forced family is never re-chosen
    assert fourth.metrics()["model.family_dropped"] == "blend,scorecard,ensemble"
    forced = FamilyChoice(family="lgbm", weight=1.0, choice="lgbm", lgbm_trees=50)
    assert forced.without("lgbm", 1.0) is None


def test_drop_on_gates_names_known_gates_only():
    with pytest.raises(ValueError, match="unknown gate"):
        FamilyConfig(drop_on_gates=("max_grade_shares",))


@pytest.mark.slow
def test_a_drop_gate_no_candidate_passes_keeps_the_first_choice(tmp_path):
    # Given a grade-share limit no model on this table can meet (a grade always holds > 1%)
    frame = _table(900, seed=7, nonlinear=False)
    config = _config().model_copy(update={"gates": GateConfig(max_grade_share=0.01)})
    # When it is trained in auto mode, with and without dropping on that gate
    dropping = train_table(frame, "bad", config=config, out_dir=tmp_path / "drop")
    family = config.family.model_copy(update={"drop_on_gates": ()})
    keeping = train_table(
        frame, "bad", config=config.model_copy(update={"family": family}), out_dir=tmp_path / "keep"
    )
    # Then, every other candidate failing it too, the first choice ships, the same model file
    assert dropping.metrics["model.family"] == keeping.metrics["model.family"]
    assert "model.family_dropped" not in dropping.metrics
    model = (dropping.bundle_dir / "model.txt").read_bytes()
    assert model == (keeping.bundle_dir / "model.txt").read_bytes()
    assert not dropping.passed and not keeping.passed
