"""One typed, frozen configuration loaded from params.yaml.

Each package owns the model of its own section; this module only composes them, so
that no package needs to import the composition layer.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.build import DatasetConfig
from features.covenants import CovenantConfig
from features.errors import RiskgradeError
from features.spark import SparkConfig
from features.synthetic import GeneratorConfig
from monitoring.config import MonitoringConfig
from rating.config import RatingConfig
from training.config import TrainConfig

DEFAULT_PARAMS_PATH = Path("params.yaml")


class PathsConfig(BaseModel):
    """Where the pipeline reads and writes by default (relative to the project root)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    raw: Path = Path("data/raw")
    dataset: Path = Path("data/features")
    reports: Path = Path("reports")
    bundles: Path = Path("data/bundles")
    """Archive of every bundle served, one folder per bundle hash (audit replay reads it)."""
    tokens: Path = Path("data/tokens.json")
    audit_db: Path = Path("data/audit.db")


class Params(BaseModel):
    """Every setting of riskgrade, one section per package."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paths: PathsConfig = Field(default_factory=PathsConfig)
    generate: GeneratorConfig = Field(default_factory=GeneratorConfig)
    features: DatasetConfig = Field(default_factory=DatasetConfig)
    rating: RatingConfig = Field(default_factory=RatingConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    covenants: CovenantConfig = Field(default_factory=CovenantConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)


class ParamsError(RiskgradeError, ValueError):
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
