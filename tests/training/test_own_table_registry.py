"""A model trained on an own table never replaces the portfolio model (issue 12, item 2).

Embedded MLflow in a temp dir; the CLI runs in process through ``riskgrade.cli.main`` (the
console entry point), except ``serve``, which runs as a subprocess because on success it
replaces its process with BentoML.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rating.compat import ModelIncompatibleError, check_compatible, incompatible_features
from tests.cli_helpers import run_main
from tests.training.conftest import make_dataset, small_spec
from training.config import FamilyConfig, GateConfig, LgbmConfig, RegistryConfig, TrainConfig
from training.errors import TrainingError
from training.pipeline import own_model_name, train_dataset

from .test_pipeline import _table

FAST = {"num_boost_round": 40, "learning_rate": 0.1, "early_stopping_rounds": 10}
RELAXED = {
    "min_auc": 0.55,
    "max_red_grades": 9,
    "max_ece": 0.5,
    "challenger_margin": 0.2,
    "max_grade_share": 1.0,
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with its own MLflow store and a params.yaml of fast settings."""
    monkeypatch.chdir(tmp_path)  # artifacts of the embedded store land in ./mlruns
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = {
        "paths": {
            "reports": str(tmp_path / "reports"),
            "bundles": str(tmp_path / "bundles"),
            "audit_db": str(tmp_path / "audit.db"),
        },
        "train": {
            "lgbm": FAST,
            "gates": {**RELAXED, "require_monotone_grades": False},
            "registry": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            "family": {"choice": "lgbm"},  # the subject is the registry, not the family's CV
            "show_progress": False,
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def _portfolio_config(home: Path) -> TrainConfig:
    return TrainConfig(
        lgbm=LgbmConfig(**FAST),
        gates=GateConfig(**RELAXED, require_monotone_grades=False),
        registry=RegistryConfig(tracking_uri=f"sqlite:///{home / 'mlflow.db'}"),
        family=FamilyConfig(choice="lgbm"),
        show_progress=False,
    )


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def test_given_a_spec_then_uncomputable_and_re_encoded_features_are_named():
    from features.catalog import FEATURE_SPEC

    # Given the small training spec: 'noise' is no catalog feature, 'industry' has other levels
    problems = incompatible_features(small_spec())
    assert problems == ["industry (other categories)", "noise (not computed)"]
    # and the catalog itself is compatible
    assert incompatible_features(FEATURE_SPEC) == []
    with pytest.raises(ModelIncompatibleError, match=r"bundle x needs .*noise \(not computed\)"):
        check_compatible(small_spec(), "bundle x")


@pytest.mark.parametrize(
    ("given", "stem", "expected"),
    [(None, "German Credit (2024)", "table-german-credit-2024"), ("scorecard", "x", "scorecard")],
)
def test_own_table_model_name_defaults_to_the_file_name(given, stem, expected):
    assert own_model_name(given, stem, TrainConfig()) == expected


@pytest.mark.parametrize("given", ["riskgrade", " "])
def test_own_table_model_name_is_never_the_portfolio_models(given):
    with pytest.raises(TrainingError, match=r"portfolio model|must not be empty"):
        own_model_name(given, "x", TrainConfig())


@pytest.mark.slow
def test_own_table_model_registers_apart_and_an_incompatible_portfolio_challenger_is_refused(
    home: Path, sample_raw_dir: Path
) -> None:
    params = str(home / "params.yaml")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # never a process-wide registry
    # Given a portfolio-model challenger whose features the feature code cannot compute
    train_dataset(
        make_dataset(customers=200, snapshots=10),
        _portfolio_config(home),
        home / "portfolio",
        spec=small_spec(),
    )
    assert _alias(client, "riskgrade", "challenger") == "1"
    # When a model is trained on an own table through the CLI
    table = home / "Own Loans.csv"
    _table(800).to_csv(table, index=False)
    code, out, err = run_main(
        "train", "--table", str(table), "--target", "status", "--positive", "bad",
        "--drop", "id", "--params", params,
    )  # fmt: skip
    assert code == 0, err
    assert "table-own-loans" in out, out + err
    # Then it is registered under its own name, and the portfolio model is untouched
    assert _alias(client, "table-own-loans", "challenger") == "1"
    assert len(client.search_model_versions("name='riskgrade'")) == 1
    assert _alias(client, "riskgrade", "challenger") == "1"
    assert _alias(client, "riskgrade", "champion") is None

    # When the incompatible portfolio challenger is promoted
    code, out, err = run_main("promote", "--params", params)
    # Then it is refused, naming the gate and every feature the code cannot compute
    assert code == 1
    said = " ".join(out.split())  # rich wraps long lines
    assert "features_computable" in said and "noise (not computed)" in said
    assert "industry (other categories)" in said
    assert _alias(client, "riskgrade", "champion") is None

    # When the own-table model is promoted under its own name, then that works
    code, out, err = run_main("promote", "--model-name", "table-own-loans", "--params", params)
    assert code == 0, out + err
    assert _alias(client, "table-own-loans", "champion") == "1"
    assert _alias(client, "riskgrade", "champion") is None

    # Given an incompatible portfolio champion (as the old promote left it)
    client.set_registered_model_alias("riskgrade", "champion", "1")
    raw, day = str(sample_raw_dir), "2025-12-31"
    commands = {
        "score": ["score", "--raw", raw, "--as-of", day, "--out", str(home / "r.parquet")],
        "monitor": ["monitor", "--raw", raw, "--as-of", day, "--store", str(home / "m.duckdb")],
    }
    for command, args in commands.items():
        # When the portfolio is scored or monitored with it
        code, out, err = run_main(*args, "--params", params)
        # Then one error line names the features, exit 2, no traceback and nothing written
        assert code == 2, (command, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: bundle"), (command, err)
        assert "noise (not computed)" in lines[0]
    assert not (home / "r.parquet").exists() and not (home / "m.duckdb").exists()
    assert not list((home / "bundles").glob("[0-9a-f]*"))  # nothing archived

    # When the service is started on it, then it refuses before starting BentoML
    script = Path(sys.executable).with_name("riskgrade")
    served = subprocess.run(
        [str(script), "serve", "--port", "1", "--params", params],
        capture_output=True, text=True, timeout=120, check=False, cwd=home,
    )  # fmt: skip
    assert served.returncode == 2, served.stderr
    assert served.stderr.strip().splitlines() == [
        line for line in served.stderr.strip().splitlines() if line.startswith("error: bundle")
    ]
    assert "noise (not computed)" in served.stderr and "Traceback" not in served.stderr
