"""End to end through the command line on a tiny portfolio, MLflow in a temp dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from riskgrade.cli import app

runner = CliRunner(env={"COLUMNS": "200", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    params = {
        "paths": {
            "raw": str(root / "raw"),
            "dataset": str(root / "features"),
            "reports": str(root / "reports"),
            "bundles": str(root / "bundles"),
            "tokens": str(root / "tokens.json"),
            "audit_db": str(root / "audit.db"),
        },
        "generate": {"customers": 600, "seed": 5},
        "train": {
            "registry": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"},
            "gates": {"min_auc": 0.55, "max_red_grades": 9, "max_ece": 0.5},
            # the commands' chain is the subject; the family choice has its own tests
            # (tests/training/test_family.py) and `make demo` runs it end to end
            "family": {"choice": "lgbm"},
            "show_progress": False,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return root


@pytest.mark.slow
def test_generate_build_train_promote_score(workspace: Path) -> None:
    params = str(workspace / "params.yaml")
    # Given a generated portfolio and its training set
    _invoke("generate", "--params", params)
    out = _invoke("features", "build", "--params", params)
    assert "default rate per snapshot" in out
    assert "-12-31" in out and "00:00:00" not in out  # snapshot dates read as days
    dataset = pd.read_parquet(workspace / "features" / "dataset.parquet")
    assert {"customer_id", "snapshot_date", "default_12m"} <= set(dataset.columns)
    out = _invoke("features", "report", str(workspace / "features"))
    assert (workspace / "features" / "quality.html").is_file()
    # When a model is trained (registered as challenger) and promoted
    out = _invoke("train", "--params", params, "--truth", str(workspace / "raw" / "_truth"))
    assert "test.auc" in out and "oracle.test.auc" in out
    metrics = json.loads((workspace / "reports" / "metrics.json").read_text())
    assert metrics["gates.passed"] is True
    out = _invoke("promote", "--params", params)
    assert "champion" in out
    # Then the portfolio is rated through the champion fetched from MLflow
    ratings = workspace / "ratings.parquet"
    _invoke(
        "score",
        "--params",
        params,
        "--raw",
        str(workspace / "raw"),
        "--as-of",
        "2025-12-31",
        "--out",
        str(ratings),
    )
    rated = pd.read_parquet(ratings)
    assert rated["pd"].between(0, 1).all()
    assert set(rated["tier"]) <= {"low", "medium", "high", "restricted"}
    archived = list((workspace / "bundles").glob("[0-9a-f]*"))
    assert len(archived) == 1 and (archived[0] / "manifest.json").is_file()
    # and a /score body can be built for one customer
    body = json.loads(
        _invoke(
            "request-example",
            "--raw",
            str(workspace / "raw"),
            "--customer",
            str(rated["customer_id"].iloc[0]),
            "--as-of",
            "2025-12-31",
        )
    )
    assert body["customer"]["customer_id"] == rated["customer_id"].iloc[0]


def test_token_create_prints_the_token_alone_on_the_last_line(tmp_path: Path) -> None:
    store = tmp_path / "tokens.json"
    result = runner.invoke(
        app, ["token", "create", "--name", "ops", "--role", "auditor", "--store", str(store)]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert len(token) > 20 and " " not in token
    assert token not in store.read_text()
    listed = runner.invoke(app, ["token", "list", "--store", str(store)])
    assert "ops" in listed.output and "auditor" in listed.output


def test_bad_role_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["token", "create", "--name", "x", "--role", "root", "--store", str(tmp_path / "t")]
    )
    assert result.exit_code != 0
    assert not (tmp_path / "t").exists()


def test_audit_verify_on_missing_db_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "--db", str(tmp_path / "none.db")])
    assert result.exit_code != 0
    assert "does not exist" in str(result.exception)
