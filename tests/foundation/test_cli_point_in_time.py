"""Point in time through the command line: a folder with later history gives, for every command
that takes --as-of, the same output byte for byte as the same folder cut at the as-of date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.io import RawTables, write_raw
from features.synthetic import GeneratorConfig, generate_tables
from features.validate import RawValidationError, load_raw_at
from riskgrade.cli import app
from tests.features.raw_builders import cut_extract
from tests.serving.factory import make_bundle

AS_OF = date(2023, 6, 30)
runner = CliRunner(env={"COLUMNS": "200"})


@dataclass(frozen=True)
class Folders:
    full: Path
    cut: Path
    raw: RawTables
    bundle: Path
    params: Path
    customer: str
    """A customer onboarded by AS_OF with an instalment due by then and paid later."""


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Folders:
    root = tmp_path_factory.mktemp("pit")
    config = GeneratorConfig(customers=150, seed=5, start=date(2021, 1, 1), end=date(2025, 6, 30))
    raw, _ = generate_tables(config)
    write_raw(raw, root / "full")
    write_raw(cut_extract(raw, AS_OF), root / "cut")
    params = root / "params.yaml"
    paths = {"bundles": str(root / "bundles"), "reports": str(root / "reports")}
    params.write_text(yaml.safe_dump({"paths": paths}))
    bundle = make_bundle(root / "bundle").path
    day = pd.Timestamp(AS_OF)
    r = raw.repayments
    paid_later = r[(r["due_date"] <= day) & (r["paid_date"] > day)]["customer_id"]
    onboarded = set(raw.customers.loc[raw.customers["onboarding_date"] <= day, "customer_id"])
    customer = sorted(set(paid_later) & onboarded)[0]
    return Folders(root / "full", root / "cut", raw, bundle, params, customer)


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_given_the_fixture_then_the_full_folder_holds_later_history(folders: Folders) -> None:
    # Given the generated folder, when compared with its cut, then it holds later customers,
    # statements, facilities, payments, transactions and defaults
    cut = cut_extract(folders.raw, AS_OF)
    for (name, full), (_, known) in zip(folders.raw.items(), cut.items(), strict=True):
        if name != "repayments":
            assert len(full) > len(known), name
    assert (
        cut.repayments["paid_date"].notna().sum()
        < folders.raw.repayments["paid_date"].notna().sum()
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_given_later_history_when_features_at_then_same_file_as_the_cut_folder(
    folders: Folders, tmp_path: Path, suffix: str
) -> None:
    # When features are computed at AS_OF from the full and from the cut folder
    outputs = {}
    for name in ("full", "cut"):
        out = tmp_path / f"{name}{suffix}"
        code, _, stderr = _run(
            "features", "at", "--raw", getattr(folders, name), "--as-of", AS_OF, "--out", out
        )
        assert code == 0, stderr
        outputs[name] = out.read_bytes()
    # Then the files are identical
    assert outputs["full"] == outputs["cut"]


def test_given_later_history_when_features_at_then_the_ignored_records_are_reported(
    folders: Folders, tmp_path: Path
) -> None:
    code, _, stderr = _run(
        "features", "at", "--raw", folders.full, "--as-of", AS_OF, "--out", tmp_path / "f.parquet"
    )
    assert code == 0
    late = int((folders.raw.customers["onboarding_date"] > pd.Timestamp(AS_OF)).sum())
    said = " ".join(stderr.split())  # the line wraps at the terminal's width
    assert f"records after {AS_OF} ignored: {late} customers onboarded later" in said
    assert "payments made later shown unpaid" in said


def test_given_later_history_when_score_then_same_ratings_as_the_cut_folder(
    folders: Folders, tmp_path: Path
) -> None:
    outputs = {}
    for name in ("full", "cut"):
        out = tmp_path / f"{name}.parquet"
        code, _, stderr = _run(
            "score", "--raw", getattr(folders, name), "--as-of", AS_OF, "--out", out,
            "--bundle", folders.bundle, "--params", folders.params, "--chunk-size", "40",
        )  # fmt: skip
        assert code == 0, stderr
        outputs[name] = out.read_bytes()
    assert outputs["full"] == outputs["cut"]
    assert len(pd.read_parquet(tmp_path / "full.parquet")) == len(
        cut_extract(folders.raw, AS_OF).customers
    )


def test_given_later_history_when_request_example_then_same_body_as_the_cut_folder(
    folders: Folders,
) -> None:
    bodies = {}
    for name in ("full", "cut"):
        code, stdout, stderr = _run(
            "request-example", "--raw", getattr(folders, name),
            "--customer", folders.customer, "--as-of", AS_OF,
        )  # fmt: skip
        assert code == 0, stderr
        bodies[name] = stdout
    assert bodies["full"] == bodies["cut"]
    assert folders.customer in bodies["full"]


def test_given_a_customer_onboarded_later_when_request_example_then_error_names_it(
    folders: Folders,
) -> None:
    customers = folders.raw.customers
    late = customers.loc[customers["onboarding_date"] > pd.Timestamp(AS_OF), "customer_id"]
    args = ["--raw", str(folders.full), "--customer", late.iloc[0], "--as-of", str(AS_OF)]
    result = runner.invoke(app, ["request-example", *args])
    assert isinstance(result.exception, ValueError)
    assert f"was onboarded after {AS_OF}" in str(result.exception)


def test_given_later_history_when_describe_as_of_then_same_tables_as_the_cut_folder(
    folders: Folders,
) -> None:
    outputs = {}
    for name in ("full", "cut"):
        code, stdout, stderr = _run("describe", getattr(folders, name), "--as-of", AS_OF)
        assert code == 0, stderr
        outputs[name] = stdout
    assert outputs["full"] == outputs["cut"]
    assert "Default rate by year" in outputs["full"]


def test_given_later_history_when_monitor_then_same_report_as_the_cut_folder(
    folders: Folders, tmp_path: Path
) -> None:
    reports = {}
    for name in ("full", "cut"):
        out = tmp_path / name / "report"
        code, _, stderr = _run(
            "monitor", "--raw", getattr(folders, name), "--as-of", AS_OF,
            "--bundle", folders.bundle, "--params", folders.params,
            "--store", tmp_path / name / "m.duckdb", "--out", out,
        )  # fmt: skip
        assert code == 0, stderr
        reports[name] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert "report.json" in reports["full"]
    assert reports["full"] == reports["cut"]


def test_given_later_history_when_validate_as_of_then_information_not_failure(
    folders: Folders,
) -> None:
    # When the full folder is validated at AS_OF
    code, stdout, _ = _run("validate", folders.full, "--as-of", AS_OF)
    # Then it passes and says what lies after the date, as information
    assert code == 0, stdout
    late = int((folders.raw.customers["onboarding_date"] > pd.Timestamp(AS_OF)).sum())
    assert "information, not a failure" in stdout
    assert f"{late} customers onboarded later" in stdout
    # And the cut folder passes with nothing to report
    code, stdout, _ = _run("validate", folders.cut, "--as-of", AS_OF)
    assert code == 0 and "information" not in stdout
    # And --strict makes the later records failures of the full folder only
    code, stdout, _ = _run("validate", folders.full, "--as-of", AS_OF, "--strict")
    assert code == 1
    flat = " ".join(stdout.split())  # the table may wrap the check over two lines
    assert "not after as-of" in flat and str(AS_OF) in flat
    code, _, _ = _run("validate", folders.cut, "--as-of", AS_OF, "--strict")
    assert code == 0


def test_given_a_broken_later_record_when_read_at_as_of_then_it_is_ignored(
    folders: Folders, tmp_path: Path
) -> None:
    # Given a negative amount in a transaction after AS_OF, and (in a second folder) before it
    txns = folders.raw.transactions
    after = txns.index[txns["ts"] > pd.Timestamp(AS_OF) + pd.Timedelta(days=1)][0]
    before = txns.index[txns["ts"] < pd.Timestamp(AS_OF)][0]
    for name, row in (("after", after), ("before", before)):
        broken = txns.copy()
        broken.loc[row, "amount"] = -5.0
        tables = dict(folders.raw.items())
        tables["transactions"] = broken
        write_raw(RawTables.from_mapping(tables), tmp_path / name)
    # When read at AS_OF, then the contract is checked on what is used: the later record is
    # left out, the earlier one is refused naming its column
    known = load_raw_at(tmp_path / "after", AS_OF)
    assert not known.cut.empty
    with pytest.raises(RawValidationError, match=r"transactions\.amount"):
        load_raw_at(tmp_path / "before", AS_OF)
