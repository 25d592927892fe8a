"""Every command on its obvious bad inputs: one error line naming the problem, exit 2.

The commands run through ``riskgrade.cli.main`` (the console entry point) in process, so an
uncaught exception fails the test with its traceback. ``serve`` would replace the process with
BentoML once the bundle is accepted: ``os.execve`` is guarded to fail the test instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.cli_helpers import run_main, write_incompatible_bundle

DAY = "2025-12-31"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Broken inputs of every kind, written once."""
    from audit import AuditConfig, open_audit_store

    root = tmp_path_factory.mktemp("bad")
    (root / "broken.yaml").write_text("train: [1, 2\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "unknown.yaml").write_text("train:\n  nope: 1\n")
    (root / "params_dir").mkdir()
    (root / "a_file").write_text("not a folder\n")
    (root / "ragged.csv").write_text('a,b\n1,2,3,4\n"x\n')
    (root / "empty.csv").write_text("")
    (root / "not_json.json").write_text("{")
    (root / "notes.txt").write_text("not a database\n" * 20)
    (root / "bad_bundle").mkdir()
    (root / "bad_bundle" / "manifest.json").write_text("{")
    write_incompatible_bundle(root / "own_bundle")
    open_audit_store(AuditConfig(path=root / "audit.db"))
    return root


def _cases(raw: str, w: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """Case name -> (arguments, environment, text the error line must contain)."""
    missing = str(w / "missing")
    rate = ["--raw", raw, "--as-of", DAY]
    score = ["score", *rate, "--out", str(w / "scores.parquet")]
    monitor = ["monitor", *rate, "--store", str(w / "monitoring.duckdb")]
    bad_uri = {"MLFLOW_TRACKING_URI": "nope://registry"}
    return {
        "unknown command": (["rate"], {}, "No such command 'rate'"),
        "missing option": (["score", "--as-of", DAY], {}, "Missing option '--raw'"),
        "bad number": (["generate", "--customers", "0"], {}, "--customers"),
        "bad date": (["validate", raw, "--as-of", "2025-02-30"], {}, "not a date"),
        "date beyond range": (
            ["features", "at", *rate[:2], "--as-of", "9999-12-31", "--out", str(w / "f.csv")],
            {},
            "--as-of: 9999-12-31 is outside 1900-01-01..2200-12-31",
        ),
        "date beyond range, export": (
            [
                "audit",
                "export",
                "--logged-from",
                DAY,
                "--logged-to",
                "9999-12-31",
                "--db",
                str(w / "audit.db"),
            ],
            {},
            "--logged-to: 9999-12-31 is outside",
        ),
        "generate into a file": (
            ["generate", "--customers", "5", "--out", str(w / "a_file")],
            {},
            "a_file exists and is not a folder",
        ),
        "params unparsable": (["promote", "--params", str(w / "broken.yaml")], {}, "cannot read"),
        "params not a mapping": (["promote", "--params", str(w / "list.yaml")], {}, "mapping"),
        "params unknown key": (["promote", "--params", str(w / "unknown.yaml")], {}, "train.nope"),
        "params a folder": (["promote", "--params", str(w / "params_dir")], {}, "Is a directory"),
        "params missing": (["promote", "--params", missing], {}, "missing does not exist"),
        "raw folder missing": (["describe", missing], {}, "raw data failed validation"),
        "dataset missing": (["train", "--dataset", missing], {}, "no dataset at"),
        "feature dataset missing": (["features", "report", missing], {}, "no dataset at"),
        "table missing": (["train", "--table", missing, "--target", "y"], {}, "does not exist"),
        "table unparsable": (
            ["train", "--table", str(w / "ragged.csv"), "--target", "y"],
            {},
            "cannot read table",
        ),
        "table empty": (
            ["train", "--table", str(w / "empty.csv"), "--target", "y"],
            {},
            "cannot read table",
        ),
        "table under the portfolio name": (
            [
                "train",
                "--table",
                str(w / "ragged.csv"),
                "--target",
                "y",
                "--model-name",
                "riskgrade",
            ],
            {},
            "portfolio model",
        ),
        "promote without challenger": (["promote"], {}, "no 'challenger' alias"),
        "promote, bad registry URL": (["promote"], bad_uri, "cannot read the model registry"),
        "score without champion": (score, {}, "no 'champion' alias"),
        "monitor without champion": (monitor, {}, "no 'champion' alias"),
        "score, bad registry URL": (score, bad_uri, "cannot open the model registry"),
        "score, incompatible bundle": (
            [*score, "--bundle", str(w / "own_bundle")],
            {},
            "noise (not computed)",
        ),
        "monitor, incompatible bundle": (
            [*monitor, "--bundle", str(w / "own_bundle")],
            {},
            "noise (not computed)",
        ),
        "score, corrupt bundle": ([*score, "--bundle", str(w / "bad_bundle")], {}, "manifest.json"),
        "score, missing bundle": ([*score, "--bundle", missing], {}, "does not exist"),
        "serve without champion": (["serve"], {}, "no 'champion' alias"),
        "serve, incompatible bundle": (
            ["serve", "--bundle", str(w / "own_bundle")],
            {},
            "noise (not computed)",
        ),
        "serve, corrupt bundle": (["serve", "--bundle", str(w / "bad_bundle")], {}, "manifest"),
        "monitor, bad language": ([*monitor, "--lang", "fr"], {}, "'fr' is not en or zh"),
        "unknown customer": (
            ["request-example", *rate, "--customer", "NOPE"],
            {},
            "customer 'NOPE' is not in the raw tables",
        ),
        "unknown role": (
            ["token", "create", "--name", "x", "--role", "root", "--store", str(w / "t.json")],
            {},
            "unknown role 'root'",
        ),
        "corrupt token store": (
            ["token", "list", "--store", str(w / "not_json.json")],
            {},
            "cannot read token file",
        ),
        "audit db missing": (["audit", "verify", "--db", missing], {}, "does not exist"),
        "audit db not a database": (
            ["audit", "show", "1", "--db", str(w / "notes.txt")],
            {},
            "not a database",
        ),
        "unknown audit record": (
            ["audit", "replay", "999", "--db", str(w / "audit.db")],
            {},
            "999",
        ),
        "audit URL unreachable": (
            ["audit", "show", "1"],
            {"RISKGRADE_AUDIT_URL": "postgresql://u@127.0.0.1:1/x"},
            "cannot open audit store",
        ),
    }


CASE_NAMES = list(_cases("raw", Path("w")))


@pytest.fixture
def project(tmp_path: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (default params) and an MLflow store without models."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.delenv("RISKGRADE_AUDIT_URL", raising=False)
    monkeypatch.delenv("RISKGRADE_DEBUG", raising=False)

    def execve(*args: object) -> None:  # serve replaces the process with BentoML: not here
        raise AssertionError(f"serve would start BentoML: {args[1]}")

    monkeypatch.setattr(os, "execve", execve)
    return tmp_path


MLFLOW_LOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d INFO mlflow\.")
"""MLflow's own log records (it creates the tables of a new store): information, not errors."""


def _assert_one_error_line(code: int, out: str, err: str, expected: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not MLFLOW_LOG.match(line)]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], (expected, lines[0])
    assert "Traceback" not in out + err


@pytest.mark.parametrize("name", CASE_NAMES)
def test_given_a_bad_input_when_run_then_one_error_line_and_exit_2(
    name: str, work: Path, sample_raw_dir: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args, env, expected = _cases(str(sample_raw_dir), work)[name]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = run_main(*args)
    _assert_one_error_line(code, out, err, expected)
    assert not (work / "scores.parquet").exists() and not (work / "monitoring.duckdb").exists()


def test_given_debug_when_an_input_error_then_the_traceback_is_kept(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from riskgrade.config import ParamsError

    monkeypatch.setenv("RISKGRADE_DEBUG", "1")
    with pytest.raises(ParamsError, match="does not exist"):
        run_main("promote", "--params", str(project / "missing.yaml"))
