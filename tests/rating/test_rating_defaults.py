"""The default scale and policy come from params.yaml, the one place they are written down."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rating.config import RatingConfig, default_rating_config
from rating.defaults import DefaultsError, default_params_path, rating_section
from rating.policy import RatingPolicy
from rating.scale import MasterScale

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_default_scale_and_policy_equal_the_rating_section_of_params_yaml() -> None:
    # Given the repository's params.yaml
    section = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))["rating"]
    # When the default constructors and the default config are built
    config = default_rating_config()
    # Then they are exactly that section
    assert default_params_path() == REPO_PARAMS
    assert MasterScale() == MasterScale.model_validate(section["scale"]) == config.scale
    assert RatingPolicy() == RatingPolicy.model_validate(section["policy"]) == config.policy
    assert RatingConfig().scale == config.scale
    assert (
        MasterScale().model_dump(mode="json")["grades"][0]["upper"]
        == (section["scale"]["grades"][0]["upper"])
    )


def test_changing_a_value_in_a_params_file_changes_what_is_loaded(tmp_path: Path) -> None:
    # Given a params file whose restricted tier reviews every 14 days and a new scale version
    document = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    document["rating"]["scale"]["version"] = "ms-test"
    document["rating"]["policy"]["tiers"][-1]["policy"]["review_frequency_days"] = 14
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    # When its rating section is loaded
    config = default_rating_config(path)
    # Then the changed values are what is loaded, and the defaults are untouched
    assert config.scale.version == "ms-test"
    assert config.policy.policy_of_tier("restricted").review_frequency_days == 14
    assert MasterScale().version != "ms-test"


def test_a_params_file_without_a_rating_section_is_named(tmp_path: Path) -> None:
    # Given a params file without a rating section
    path = tmp_path / "params.yaml"
    path.write_text("train: {seed: 1}\n", encoding="utf-8")
    # When it is read, then the error names the file
    with pytest.raises(DefaultsError, match=r"params\.yaml has no 'rating:' mapping"):
        rating_section(path)


def test_explicit_fields_override_only_what_they_name() -> None:
    # Given a scale built with only a version
    scale = MasterScale(version="ms-x")
    # Then the other fields still come from params.yaml
    assert scale.version == "ms-x"
    assert scale.grades == MasterScale().grades
