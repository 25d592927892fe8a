import json

import numpy as np
import pandas as pd
import pytest

from rating.bundle import REPORT_FILE, load_bundle
from rating.model import RatingModel
from training.errors import TargetError, TrainingError
from training.pipeline import train_dataset, train_table

from .conftest import fast_config

REQUIRED = [
    "test.auc",
    "test.gini",
    "test.ks",
    "test.brier",
    "test.ece",
    "challenger.test.auc",
    "grades.monotone",
    "gates.passed",
    "model.version",
    "model.bundle_sha256",
]


@pytest.fixture(scope="module")
def trained(dataset, spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    truth = tmp_path_factory.mktemp("truth")
    month = pd.to_datetime(dataset["snapshot_date"]).dt.to_period("M").dt.to_timestamp()
    pd.DataFrame(
        {
            "customer_id": dataset["customer_id"],
            "month": month,
            "true_pd_12m": np.clip(dataset["max_dpd_12m"] / 400 + 0.01, 0, 1),
        }
    ).to_parquet(truth / "true_pd.parquet")
    return train_dataset(dataset, fast_config(), out, truth_dir=truth, spec=spec), out


def test_train_dataset_writes_bundle_metrics_and_report(trained, spec):
    result, out = trained
    metrics = json.loads((out / "metrics.json").read_text())
    # Then every required key is present and sane
    for key in [*REQUIRED, "oracle.test.auc"]:
        assert key in metrics, key
    assert 0.6 < metrics["test.auc"] <= 1
    assert metrics["test.gini"] == pytest.approx(2 * metrics["test.auc"] - 1)
    assert metrics["oracle.test.coverage"] == 1.0
    assert metrics["model.bundle_sha256"] == result.bundle_sha256
    # And the bundle loads, verifies and scores with rating
    bundle = load_bundle(out / "bundle")
    assert bundle.bundle_hash == result.bundle_sha256
    assert bundle.spec.names == spec.names
    assert set(bundle.reference["features"]) == set(spec.names)
    model = RatingModel(bundle)
    zeros = np.zeros(3)
    flags = {f: zeros for f in model.policy.flag_names if f not in spec.names}
    scored = model.score(np.zeros((3, len(spec.names))), flags)
    assert ((scored.pd > 0) & (scored.pd < 1)).all()


def test_given_a_training_run_then_its_validation_report_is_inside_the_bundle(trained):
    # Given a training run, then the bundle holds the run's report, hashed in its manifest
    result, out = trained
    bundle = load_bundle(out / "bundle", expected_hash=result.bundle_sha256)
    assert REPORT_FILE in bundle.file_hashes
    assert bundle.read_validation_report() == (out / "report.html").read_bytes()


def test_report_is_self_contained(trained):
    _, out = trained
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html
    for section in (
        "Data",
        "Method",
        "Discrimination on the test window",
        "Rank order by grade",
        "Calibration over the cycle",
        "Stability",
        "Challenger",
        "Limitations",
    ):
        assert section in html
    assert {p.name for p in (out / "plots").iterdir()} >= {
        "roc.png",
        "ks.png",
        "shap.png",
        "grades.png",
        "cycle.png",
        "cycle_grades.png",
    }
    # And grades without power are shown as not assessable, not red
    assert 'class="not-assessable"' in html
    # And the explanations hold shap's three plots: one decision, the test set, top features
    assert 'alt="shap_waterfall"' in html and 'alt="shap"' in html
    dependence = sorted(p.stem for p in (out / "plots").glob("shap_dependence_*.png"))
    assert len(dependence) == 3
    for name in dependence:
        assert f'alt="{name}"' in html


def test_mean_calibrated_training_pd_matches_the_long_run_rate(trained):
    result, _ = trained
    m = result.metrics
    assert m["train.mean_pd"] == pytest.approx(m["calibration.long_run_default_rate"], abs=1e-9)


def _table(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, n)
    late = rng.poisson(1.0, n)
    region = rng.choice(["north", "south", "east"], n)
    gender = rng.choice(["f", "m"], n)
    score = -2.0 + 0.8 * late - 0.5 * (np.log(income) - 10) + 0.4 * (region == "east")
    status = np.where(rng.random(n) < 1 / (1 + np.exp(-score)), "bad", "good")
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "income": income,
            "late": late,
            "region": region,
            "gender": gender,
            "status": status,
        }
    )


def test_train_table_with_string_target_and_protected_column(tmp_path):
    # Given a CSV with a string target, an id column and a protected column
    path = tmp_path / "own.csv"
    _table().to_csv(path, index=False)
    # When it is trained with 3-fold CV
    result = train_table(
        path,
        "status",
        positive="bad",
        cv=3,
        drop=["id"],
        protected=["gender"],
        config=fast_config(),
        out_dir=tmp_path / "out",
    )
    m = result.metrics
    # Then the model ignores the protected and dropped columns and fairness metrics exist
    bundle = load_bundle(tmp_path / "out" / "bundle")
    assert bundle.spec.names == ["income", "late", "region"]
    assert bundle.spec.by_name("region").kind == "categorical"
    assert 0 < m["fairness.gender.approval_ratio"] <= 1
    assert "fairness.gender.auc_gap" in m
    assert set(result.fairness["group"]) == {"f", "m"}
    assert m["cv.auc_mean"] > 0.6 and m["cv.auc_std"] >= 0
    assert "cv.challenger_auc_mean" in m
    assert m["test.auc"] > 0.6


@pytest.mark.parametrize(
    ("frame_change", "kwargs", "error", "match"),
    [
        (lambda f: f, {"target": "missing"}, TargetError, "target column 'missing'"),
        (lambda f: f.assign(status="good"), {"target": "status"}, TargetError, "single class"),
        (lambda f: f.assign(status="maybe"), {"target": "status"}, TargetError, "positive="),
        (lambda f: f, {"target": "status", "protected": ["race"]}, TrainingError, "race"),
        (lambda f: f[["status"]], {"target": "status"}, TrainingError, "no feature column"),
    ],
)
def test_train_table_errors_name_the_problem(tmp_path, frame_change, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_table(frame_change(_table(200)), config=fast_config(), out_dir=tmp_path, **kwargs)


def test_train_dataset_names_missing_columns(dataset, spec, tmp_path):
    with pytest.raises(TrainingError, match="debt_ratio"):
        train_dataset(dataset.drop(columns=["debt_ratio"]), fast_config(), tmp_path, spec=spec)
