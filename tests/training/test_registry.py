import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from training.config import FamilyConfig, GateConfig, LgbmConfig, RegistryConfig, TrainConfig
from training.errors import PromotionError
from training.pipeline import train_dataset
from training.registry import promote

from .conftest import make_dataset


def _config(**gates):
    return TrainConfig(
        lgbm=LgbmConfig(num_boost_round=60, learning_rate=0.1, early_stopping_rounds=20),
        gates=GateConfig(challenger_margin=0.1, require_monotone_grades=False, **gates),
        family=FamilyConfig(choice="lgbm"),  # the registry flow, not the family choice
        show_progress=False,
    )


# The small test spec has features the catalog lacks: its models are registered under a
# research name (the portfolio model 'riskgrade' refuses such a challenger).
NAME = "research"


def _research():
    return _config().model_copy(update={"registry": RegistryConfig(registered_model_name=NAME)})


@pytest.fixture
def mlflow_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts of the embedded store land in ./mlruns
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path, f"sqlite:///{tmp_path}/mlflow.db"


@pytest.mark.slow
def test_run_is_logged_registered_promoted_and_loadable(mlflow_home, spec):
    tmp, uri = mlflow_home
    # Given a first training run logged to a fresh embedded store
    first = train_dataset(make_dataset(), _research(), tmp / "run1", spec=spec, tracking_uri=uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    # Then the run has metrics, lineage tags, a dataset input and the challenger alias
    run = client.get_run(first.run_id)
    assert run.data.metrics["test.auc"] == pytest.approx(first.metrics["test.auc"])
    assert {"git.commit", "dvc.data_hash", "pkg.lightgbm", "platform"} <= set(run.data.tags)
    assert run.inputs.dataset_inputs[0].dataset.digest == first.metrics["data.digest"][:32]
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "1"
    assert json.loads((tmp / "run1" / "metrics.json").read_text())["model.version"] == "1"
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "validation")}
    assert {
        "validation/report.html",
        "validation/roc.png",
        "validation/test_set.parquet",
    } <= artifacts

    # When it is promoted with gates it passes
    result = promote(_config(), tracking_uri=uri, model_name=NAME)
    # Then champion points at version 1 and the pyfunc model predicts PDs
    assert result.promoted, result.message
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    frame = make_dataset(customers=5, snapshots=1)[spec.names]
    predictions = model.predict(frame)
    assert list(predictions.columns[:3]) == ["pd", "grade", "tier"]
    assert ((predictions["pd"] > 0) & (predictions["pd"] < 1)).all()

    # Given a second run that fails a gate
    train_dataset(make_dataset(seed=5), _research(), tmp / "run2", spec=spec, tracking_uri=uri)
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    # When promotion requires an unreachable AUC
    refused = promote(_config(min_auc=0.99), tracking_uri=uri, model_name=NAME)
    # Then champion stays on version 1 and the failed gate is named
    assert not refused.promoted
    assert "min_auc" in [g.name for g in refused.failed_gates]
    assert "min_auc" in refused.message
    assert refused.champion_auc is not None
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"


def test_promote_without_challenger_is_a_clear_error(mlflow_home):
    _, uri = mlflow_home
    with pytest.raises(PromotionError, match="no 'challenger' alias"):
        promote(TrainConfig(), tracking_uri=uri)
