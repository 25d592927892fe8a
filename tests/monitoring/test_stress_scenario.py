"""Stress scenarios: parsing with clear errors, and each customer's effective shock."""

from __future__ import annotations

import pandas as pd
import pytest

from monitoring.scenario import (
    SCENARIO_DIR,
    SHOCK_COLUMNS,
    Scenario,
    ScenarioError,
    customer_shocks,
    load_scenario,
    parse_scenario,
)


def _write(tmp_path, text: str):
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["sector_downturn", "recession"])
def test_given_a_shipped_scenario_when_loaded_by_name_or_path_then_the_same(name):
    # When a shipped scenario is loaded by its name and by its file
    by_name = load_scenario(name)
    by_path = load_scenario(SCENARIO_DIR / f"{name}.yaml")
    # Then both give the same frozen scenario, with at least one shock and a description
    assert by_name == by_path and by_name.name == name
    assert by_name.shocks and by_name.description
    with pytest.raises(ValueError):
        by_name.shocks[0].revenue = 0.5  # type: ignore[misc]


def test_given_shipped_scenarios_then_they_are_in_the_package_folder():
    # Then the wheel carries them (monitoring/ is a wheel package)
    assert {p.stem for p in SCENARIO_DIR.glob("*.yaml")} >= {"sector_downturn", "recession"}
    assert SCENARIO_DIR.parent.name == "monitoring"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: s\nshocks:\n  - industries: [realestate]\n",
            ["shocks.0.industries", "unknown industry ['realestate']", "real_estate"],
        ),
        (
            "name: s\nshocks:\n  - regions: [east, mars]\n",
            ["shocks.0.regions", "unknown region ['mars']", "northeast"],
        ),
        ("name: s\nshocks:\n  - revenue: 1.5\n", ["shocks.0.revenue", "0.9", "got 1.5"]),
        ("name: s\nshocks:\n  - inflows: -0.1\n", ["shocks.0.inflows", "got -0.1"]),
        (
            "name: s\nshocks:\n  - overdue: {share: 0.2, days: 400}\n",
            ["shocks.0.overdue.days", "365", "got 400"],
        ),
        (
            "name: s\nshocks:\n  - overdue: {share: 0.2, days: 30, months: 13}\n",
            ["shocks.0.overdue.months", "got 13"],
        ),
        ("name: s\nshocks:\n  - revenu: 0.1\n", ["shocks.0.revenu", "Extra inputs"]),
        ("name: s\nshock:\n  - revenue: 0.1\n", ["shock:", "Extra inputs", "shocks: Field"]),
        ("name: s\nshocks: []\n", ["shocks", "at least 1"]),
        ("name: 'a b'\nshocks:\n  - revenue: 0.1\n", ["name", "pattern", "got 'a b'"]),
        ("- revenue: 0.1\n", ["must hold a mapping, not list"]),
        ("name: s\nshocks: [\n", ["not valid YAML at line 3"]),
    ],
)
def test_given_a_bad_scenario_file_when_loaded_then_one_error_names_key_and_value(
    tmp_path, text, expected
):
    # Given a scenario file with one mistake
    path = _write(tmp_path, text)
    # When it is loaded
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    # Then the one-line message names the file, the key and the bad value
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for part in expected:
        assert part in message, message


def test_given_a_bad_entry_then_the_list_is_not_also_called_too_short(tmp_path):
    path = _write(tmp_path, "name: s\nshocks:\n  - industries: [nope]\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "at least 1" not in str(caught.value)


def test_given_a_missing_file_when_loaded_then_the_error_lists_shipped_names(tmp_path):
    with pytest.raises(ScenarioError, match=r"does not exist.*recession.*sector_downturn"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario("no_such_scenario")


def test_given_overlapping_entries_when_customer_shocks_then_harshest_per_shock():
    # Given a broad entry and a harsher one for real estate in the east
    scenario = parse_scenario(
        {
            "name": "layered",
            "shocks": [
                {"revenue": 0.1, "cash_flow": 0.5, "overdue": {"share": 0.2, "days": 30}},
                {
                    "industries": ["real_estate"],
                    "regions": ["east"],
                    "revenue": 0.3,
                    "overdue": {"share": 0.1, "days": 60, "months": 3},
                },
                {"industries": ["healthcare"], "regions": ["west"], "inflows": 0.4},
            ],
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "industry": ["real_estate", "real_estate", "healthcare", "healthcare"],
            "region": ["east", "west", "west", "east"],
        }
    )
    # When each customer's effective shock is taken
    shocks = customer_shocks(customers, scenario)
    # Then every customer gets the broad entry and, shock by shock, the harsher value
    assert list(shocks.columns) == list(SHOCK_COLUMNS)
    assert shocks.loc["A", "revenue"] == 0.3 and shocks.loc["B", "revenue"] == 0.1
    assert shocks.loc["A", "cash_flow"] == 0.5  # the sector entry does not soften it
    assert shocks.loc["A", "overdue_share"] == 0.2 and shocks.loc["A", "overdue_days"] == 60
    assert shocks.loc["A", "overdue_months"] == 12
    # And the region filter applies with the industry filter
    assert shocks.loc["C", "inflows"] == 0.4 and shocks.loc["D", "inflows"] == 0.0


def test_given_a_segment_entry_then_its_description_names_it():
    scenario = Scenario.model_validate(
        {"name": "s", "shocks": [{"industries": ["hospitality"], "revenue": 0.2}]}
    )
    assert scenario.shocks[0].segment() == "hospitality / all regions"
