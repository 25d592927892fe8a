"""Resolving the MLflow champion to a verified bundle folder (embedded MLflow in a temp dir)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from rating.bundle import BundleIntegrityError
from rating.champion import BUNDLE_HASH_TAG, ChampionError, fetch_champion
from tests.training.conftest import make_dataset, small_spec
from training.config import FamilyConfig, GateConfig, LgbmConfig, RegistryConfig, TrainConfig
from training.pipeline import train_dataset
from training.registry import promote


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path}/mlflow.db"


def _config(name: str = "riskgrade") -> TrainConfig:
    return TrainConfig(
        lgbm=LgbmConfig(num_boost_round=40, learning_rate=0.1, early_stopping_rounds=10),
        gates=GateConfig(challenger_margin=0.1, require_monotone_grades=False),
        registry=RegistryConfig(registered_model_name=name),
        family=FamilyConfig(choice="lgbm"),  # champion loading, not the family choice
        show_progress=False,
    )


# The small test spec has features the catalog lacks: registered under a research name.
NAME = "research"


@pytest.mark.slow
def test_champion_is_fetched_verified_and_pinned_to_the_recorded_hash(registry, tmp_path):
    # Given no champion yet, when fetching, then a clear error says what to do
    with pytest.raises(ChampionError, match="train and promote"):
        fetch_champion(registry, NAME, tmp_path / "champion")
    # Given a trained and promoted model
    trained = train_dataset(
        make_dataset(), _config(NAME), tmp_path / "run", tracking_uri=registry, spec=small_spec()
    )
    assert promote(_config(), tracking_uri=registry, model_name=NAME).promoted
    # When the champion is fetched, then its bundle is the one training wrote
    champion = fetch_champion(registry, NAME, tmp_path / "champion")
    assert champion.version == "1"
    assert champion.bundle_hash == trained.bundle_sha256
    assert (champion.bundle_dir / "manifest.json").is_file()
    # Given the run's recorded bundle hash no longer matches, when fetched, then refused
    MlflowClient(tracking_uri=registry).set_tag(trained.run_id, BUNDLE_HASH_TAG, "0" * 64)
    with pytest.raises(BundleIntegrityError):
        fetch_champion(registry, NAME, tmp_path / "champion2")
    assert not (tmp_path / "champion2").exists()
