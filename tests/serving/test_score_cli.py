"""``riskgrade score --out`` and ``riskgrade request-example`` on a raw folder with defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.io import RawTables, write_raw
from rating.output import POLICY_PREFIX, judged_column_names
from rating.policy import CreditPolicy
from riskgrade.cli import app

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, portfolio, as_of) -> Path:
    """The serving portfolio with C00003 in default 30 days before the rating date."""
    root = tmp_path_factory.mktemp("score-cli")
    defaults = pd.DataFrame(
        {
            "customer_id": ["C00003"],
            "default_date": [pd.Timestamp(as_of) - pd.Timedelta(days=30)],
            "default_type": ["insolvency"],
        }
    )
    write_raw(RawTables(**{**dict(portfolio.items()), "defaults": defaults}), root / "raw")
    (root / "params.yaml").write_text(yaml.safe_dump({"paths": {"bundles": str(root / "b")}}))
    return root


def _score(folder: Path, bundle, as_of, out: Path, *extra: str) -> pd.DataFrame:
    args = ["score", "--raw", str(folder / "raw"), "--as-of", as_of.isoformat()]
    args += ["--out", str(out), "--bundle", str(bundle.path)]
    args += ["--params", str(folder / "params.yaml"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out)


def test_given_a_raw_folder_when_scored_in_zh_then_every_documented_column_in_chinese(
    folder, bundle, as_of, tmp_path
):
    # When the portfolio is scored to CSV with Chinese reason texts
    rated = _score(folder, bundle, as_of, tmp_path / "ratings.csv", "--lang", "zh")
    # Then the file holds exactly the documented columns (with the rating chain's), policy
    # and model on every row
    assert tuple(rated.columns) == judged_column_names()
    assert rated[[POLICY_PREFIX + n for n in CreditPolicy.model_fields]].notna().all().all()
    assert rated["model_version"].nunique() == 1 and rated["model_version"].notna().all()
    assert (rated["bundle_hash"] == bundle.bundle_hash).all()
    assert (rated["lang"] == "zh").all()
    # and the customer in default is D, restricted, its default reason first, in Chinese
    row = rated.set_index("customer_id").loc["C00003"]
    assert (row["grade"], row["tier"], bool(row["in_default"])) == ("D", "restricted", True)
    assert row["reason_1"] == "DEF03" and row["reason_1_text"].endswith("起违约（破产）")
    assert not bool(row["policy_new_credit_allowed"])


def test_given_a_raw_folder_when_scored_in_en_to_parquet_then_english_texts(
    folder, bundle, as_of, tmp_path
):
    rated = _score(folder, bundle, as_of, tmp_path / "ratings.parquet")
    row = rated.set_index("customer_id").loc["C00003"]
    assert row["reason_1_text"].startswith("In default since")
    assert (rated["lang"] == "en").all()


def test_given_a_bad_lang_when_scored_then_exit_2_naming_the_option(
    folder, bundle, as_of, tmp_path
):
    args = ["score", "--raw", str(folder / "raw"), "--as-of", as_of.isoformat()]
    args += ["--out", str(tmp_path / "x.csv"), "--bundle", str(bundle.path), "--lang", "fr"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--lang" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_given_a_customer_in_default_when_request_example_then_the_body_carries_it(folder, as_of):
    args = ["request-example", "--raw", str(folder / "raw"), "--customer", "C00003"]
    result = runner.invoke(app, [*args, "--as-of", as_of.isoformat()])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    expected = (pd.Timestamp(as_of) - pd.Timedelta(days=30)).date().isoformat()
    assert body["defaults"] == [{"default_date": expected, "default_type": "insolvency"}]
