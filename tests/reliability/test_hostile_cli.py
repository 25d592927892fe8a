"""The hostile command-line catalogue: every case refused in one line, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.hostile_cli import CLI_CASES, check_cli_case, prepare


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("hostile_cli"))


def test_given_the_catalogue_then_it_covers_no_champion_incompatible_bundles_and_far_dates():
    names = {case.name for case in CLI_CASES}
    assert {
        "monitor_no_champion",
        "score_incompatible_bundle",
        "serve_incompatible_bundle",
    } <= names
    assert len(names) == len(CLI_CASES)


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_CASES, ids=[case.name for case in CLI_CASES])
def test_given_a_hostile_command_line_when_run_then_one_error_line_and_exit_2(case, work):
    result = check_cli_case(case, work)
    assert result["passed"], result
