"""One typed, frozen configuration loaded from params.yaml.

Each package owns the model of its own section; this module only composes them, so
that no package needs to import the composition layer.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.synthetic import GeneratorConfig

DEFAULT_PARAMS_PATH = Path("params.yaml")


class PathsConfig(BaseModel):
    """Where the pipeline reads and writes by default (relative to the project root)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    raw: Path = Path("data/raw")
    dataset: Path = Path("data/features")
    reports: Path = Path("reports")


class Params(BaseModel):
    """Every setting of riskgrade, one section per package."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 42
    paths: PathsConfig = Field(default_factory=PathsConfig)
    generate: GeneratorConfig = Field(default_factory=GeneratorConfig)


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or invalid."""


def load_params(path: Path = DEFAULT_PARAMS_PATH) -> Params:
    """Load and validate params.yaml; a missing default file gives the built-in defaults.

    Raises:
        ParamsError: naming the file and every invalid field.
    """
    if not path.exists():
        if path == DEFAULT_PARAMS_PATH:
            return Params()
        raise ParamsError(f"params file {path} does not exist")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ParamsError(f"cannot read {path}: {error}") from error
    if not isinstance(document, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, not {type(document).__name__}")
    try:
        return Params.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        raise ParamsError(f"invalid {path}: {problems}") from error
