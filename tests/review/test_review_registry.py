"""The review page on a champion fetched from the MLflow registry shows its validation report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import FEATURE_SPEC
from features.spec import FeatureKind
from rating.bundle import load_bundle
from rating.champion import fetch_champion
from tests.rating.test_champion import _config
from tests.review.conftest import start_review
from tests.training.conftest import make_dataset
from training.pipeline import train_dataset
from training.registry import promote


def catalog_dataset() -> pd.DataFrame:
    """The training fixture's dataset widened to every catalog feature (the service's spec)."""
    frame = make_dataset()
    rng = np.random.default_rng(7)
    for feature in FEATURE_SPEC.features:
        if feature.name in frame:
            continue
        if feature.kind is FeatureKind.CATEGORICAL:
            frame[feature.name] = rng.integers(0, len(feature.categories), len(frame)).astype(float)
        elif feature.kind is FeatureKind.FLAG:
            frame[feature.name] = 0.0
        else:
            frame[feature.name] = rng.normal(0.0, 1.0, len(frame))
    return frame


@pytest.mark.slow
def test_given_a_champion_from_the_registry_when_reviewed_then_its_training_report_is_shown(
    tmp_path, monkeypatch, raw
):
    # Given a model trained, registered and promoted in an embedded MLflow
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    registry = f"sqlite:///{tmp_path}/mlflow.db"
    run = tmp_path / "run"
    trained = train_dataset(
        catalog_dataset(), _config(), run, tracking_uri=registry, spec=FEATURE_SPEC
    )
    assert promote(_config(), tracking_uri=registry).promoted
    # When the service loads the champion fetched from the registry (no training output beside it)
    champion = fetch_champion(registry, "riskgrade", tmp_path / "serving" / "_champion")
    assert champion.bundle_hash == trained.bundle_sha256
    started = start_review(tmp_path, load_bundle(champion.bundle_dir), raw)
    with started.client:
        detail = started.get("/review/api/decisions/2").json()
        # Then the review page links the report, and it is the one training wrote
        report = detail["model"]["report"]
        assert report["available"] is True, report
        served = started.get("/review/" + report["url"])
    assert served.status_code == 200
    assert served.content == (run / "report.html").read_bytes()
    started.state.audit.close()
