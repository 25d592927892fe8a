"""Training configuration: frozen pydantic models with defaults that work.

The lead composes :class:`TrainConfig` into the ``train:`` section of ``params.yaml``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SplitConfig(BaseModel):
    """Out-of-time split by snapshot date (dataset) or stratified random split (own table).

    Out of time: the last ``test_snapshots`` snapshot dates form the test window, the
    ``calibration_snapshots`` before them the calibration window, all earlier ones the
    training window. ``embargo_months`` drops training snapshots whose date lies less than
    that many months before the first held-out (calibration) snapshot: with the 12-month
    label horizon, ``embargo_months=12`` guarantees no training label observes an outcome
    inside the held-out period (at the price of four quarterly snapshots).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    test_snapshots: int = Field(default=4, ge=1)
    calibration_snapshots: int = Field(default=2, ge=1)
    embargo_months: int = Field(default=0, ge=0, le=36)
    calibration_share: float = Field(default=0.2, gt=0.0, lt=0.5)
    """Random split only: share of rows in the calibration window."""
    test_share: float = Field(default=0.2, gt=0.0, lt=0.5)
    """Random split only: share of rows in the test window."""


class LgbmConfig(BaseModel):
    """LightGBM binary model parameters (lightgbm 4.x names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_boost_round: int = Field(default=1000, ge=1)
    early_stopping_rounds: int = Field(default=100, ge=0)
    """Stop when the calibration-window log loss has not improved for this many rounds (0 = off)."""
    learning_rate: float = Field(default=0.03, gt=0.0, le=1.0)
    num_leaves: int = Field(default=31, ge=2)
    max_depth: int = Field(default=6, ge=-1)
    """Depth cap (-1 = unlimited); shallow trees keep the rating explainable."""
    min_child_samples: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=0.8, gt=0.0, le=1.0)
    bagging_fraction: float = Field(default=0.8, gt=0.0, le=1.0)
    bagging_freq: int = Field(default=1, ge=0)
    lambda_l2: float = Field(default=1.0, ge=0.0)
    min_gain_to_split: float = Field(default=0.0, ge=0.0)
    monotone: bool = True
    """Apply monotone constraints from the spec's risk directions."""
    monotone_constraints_method: Literal["basic", "intermediate", "advanced"] = "basic"
    num_threads: int = Field(default=1, ge=1)
    """Threads for training; the model text is identical for any value (checked by a test)."""


class OptunaConfig(BaseModel):
    """Optional hyper-parameter search (TPE, seeded) maximising calibration-window AUC."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_trials: int = Field(default=0, ge=0)
    """0 = no search: the ``LgbmConfig`` values are used as given."""
    max_depth_choices: tuple[int, ...] = (4, 5, 6)


class ChallengerConfig(BaseModel):
    """Logistic-regression scorecard on WOE bins, trained as challenger in every run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    binning: Literal["optbinning", "quantile"] = "optbinning"
    """Numeric binning: optimal monotone binning (optbinning) or quantile bins merged until
    monotone (implemented in `training.challenger`); ``benchmarks/bench_binning.py`` compares
    them."""
    n_bins: int = Field(default=10, ge=2, le=50)
    """Initial bins: quantile bins (``quantile``) or at most this many CART pre-bins."""
    min_bin_share: float = Field(default=0.05, gt=0.0, lt=0.5)
    """Smallest share of the non-missing rows in a bin."""
    monotone: bool = True
    """Bad rate monotone over the bins (direction from the spec, else from the data)."""
    woe_smoothing: float = Field(default=0.5, gt=0.0)
    c: float = Field(default=1.0, gt=0.0)
    """Inverse L2 regularisation strength of the logistic regression."""
    max_iter: int = Field(default=2000, ge=10)


PLAIN_LGBM: dict[str, float | int] = {
    "learning_rate": 0.03,
    "num_leaves": 31,
    "max_depth": -1,
    "min_child_samples": 20,
    "feature_fraction": 1.0,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
    "lambda_l2": 0.0,
    "min_gain_to_split": 0.0,
}
"""LightGBM's own defaults (and learning rate 0.03): the plain reference candidate's settings."""


class FamilyConfig(BaseModel):
    """Which model family becomes the bundle's model, chosen inside the training window.

    ``auto`` cross-validates (K folds on the training rows, grouped by customer in the portfolio
    mode) the plain LightGBM (``plain``: library defaults, ``plain_rounds`` trees, monotone only
    where the risk direction is known), the configured LightGBM (``lgbm``, early-stopped, with
    ``lgbm_variants`` x ``tree_factors``), their equal-weight ``ensemble``, the WOE scorecard
    and its blend with the best LightGBM candidate. ``rule`` ``one_se`` keeps the ``reference``
    candidate unless another beats it by more than ``se_multiplier`` standard errors of the
    per-fold AUC difference; ``best`` takes the best mean. ``lgbm``, ``lgbm_plain``,
    ``ensemble``, ``scorecard`` and ``blend`` force a family (``blend`` still picks its weight
    and LightGBM part by cross-validation). Every family ships as one LightGBM text model.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    choice: Literal["auto", "lgbm", "lgbm_plain", "ensemble", "scorecard", "blend"] = "auto"
    rule: Literal["one_se", "best"] = "one_se"
    """How ``auto`` picks: the reference unless beaten by ``se_multiplier`` SEs, or best mean."""
    reference: Literal["lgbm", "lgbm_plain", "ensemble"] = "ensemble"
    """The default candidate of ``one_se``: the configured or the plain LightGBM, or their
    equal-weight ensemble (the default: it does not bet on one setting by a noisy score)."""
    se_multiplier: float = Field(default=1.0, ge=0.0)
    """Standard errors of the paired per-fold AUC difference a challenger must win by."""
    cv_folds: int = Field(default=5, ge=2, le=20)
    blend_weights: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    """LightGBM shares tried for the blend ``w*lgbm_margin + (1-w)*scorecard_logit``."""
    tree_factors: tuple[float, ...] = (1.0, 1.5, 2.0)
    """LightGBM tree counts tried, as multiples of the early-stopped count (capped at
    ``lgbm.num_boost_round``); the count with the best CV AUC is kept."""
    lgbm_variants: tuple[dict[str, float | int], ...] = ({},)
    """LightGBM parameter sets tried (overrides of ``lgbm``; ``{}`` = as configured), each at
    every tree count; monotone constraints apply to all of them."""
    plain: dict[str, float | int] = Field(default_factory=lambda: dict(PLAIN_LGBM))
    """Overrides of ``lgbm`` giving the plain reference LightGBM (monotone where directed)."""
    plain_rounds: int = Field(default=400, ge=1)
    """Trees of the plain reference LightGBM (fixed, no early stopping)."""
    drop_on_gates: tuple[str, ...] = ("max_grade_share",)
    """Validation gates (``training.gates.GATE_NAMES``) whose failure drops the chosen family
    under ``auto``: the next candidate by the same rule is built and validated instead."""

    @model_validator(mode="after")
    def _check_weights(self) -> FamilyConfig:
        bad = [w for w in self.blend_weights if not 0.0 < w < 1.0]
        if bad or not self.blend_weights:
            raise ValueError(f"blend_weights must be non-empty and inside (0, 1), got {bad}")
        if not self.lgbm_variants:
            raise ValueError("lgbm_variants must hold at least one parameter set ({} = as is)")
        from training.gates import GATE_NAMES  # gates import this module

        unknown = [g for g in self.drop_on_gates if g not in GATE_NAMES]
        if unknown:
            raise ValueError(f"drop_on_gates: unknown gate(s) {unknown} (known: {GATE_NAMES})")
        for variant in (*self.lgbm_variants, self.plain):
            LgbmConfig(**variant)  # names a misspelt or out-of-range parameter
        if not self.tree_factors or min(self.tree_factors) <= 0.0:
            raise ValueError(
                f"tree_factors must be non-empty and positive, got {self.tree_factors}"
            )
        return self


class CalibrationConfig(BaseModel):
    """Platt scaling on the raw margin, anchored to the long-run default rate.

    ``anchor="long_run"`` shifts the Platt intercept so that the mean calibrated PD over the
    training window equals the long-run default rate: ``long_run_default_rate`` when given,
    else the mean label over all training snapshots (a through-the-cycle average, since the
    training window spans several years). ``anchor="none"`` keeps the calibration window's
    point-in-time level. Isotonic regression is always fitted for comparison, never used.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    anchor: Literal["long_run", "none"] = "long_run"
    long_run_default_rate: float | None = Field(default=None, gt=0.0, lt=1.0)


class ValidationConfig(BaseModel):
    """How validation statistics are computed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ece_bins: int = Field(default=10, ge=2)
    psi_bins: int = Field(default=10, ge=2)
    jeffreys_red: float = Field(default=0.01, gt=0.0, lt=1.0)
    jeffreys_yellow: float = Field(default=0.05, gt=0.0, lt=1.0)
    min_grade_customers: int = Field(default=30, ge=1)
    """Rank order: grades with fewer rows are pooled with their worse neighbours."""
    rank_order_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Rank order: family-wise level of the one-sided tests of adjacent grades (Bonferroni)."""
    min_power: float = Field(default=0.5, ge=0.0, le=1.0)
    """A per-grade Jeffreys test with less power than this to detect a doubling of the band's
    upper PD is reported as ``not assessable`` (grey), never red."""
    red_zone_confidence: float = Field(default=0.9999, gt=0.5, lt=1.0)
    """Basel-style traffic light on the number of red grades: the count is in the red zone when
    its binomial probability (assessable grades, each red with ``jeffreys_red``) is below
    ``1 - red_zone_confidence``; the yellow zone starts at 95%."""
    level_confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    """Confidence of the interval around the long-run ratio of default rate to mean PD."""
    approval_share: float = Field(default=0.8, gt=0.0, lt=1.0)
    """Fairness: share of lowest-PD rows approved when computing approval rates by group."""
    reference_bins: int = Field(default=10, ge=2)

    @model_validator(mode="after")
    def _check_levels(self) -> ValidationConfig:
        if self.jeffreys_red >= self.jeffreys_yellow:
            raise ValueError(
                f"jeffreys_red ({self.jeffreys_red}) must be below jeffreys_yellow "
                f"({self.jeffreys_yellow})"
            )
        return self


class GateConfig(BaseModel):
    """Promotion gates: a model failing any of them is not promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_auc: float = Field(default=0.70, ge=0.5, le=1.0)
    require_monotone_grades: bool = True
    max_red_grades: int | None = Field(default=None, ge=0)
    """Red grades allowed in the through-the-cycle Jeffreys test; ``None`` = the Basel-style
    traffic light (fail only when the count is in the red zone)."""
    level_tolerance: float = Field(default=0.25, gt=0.0, lt=1.0)
    """Calibration level: the long-run default rate over all windows may differ from the long-run
    mean PD by this relative amount; the gate fails only when the confidence interval of their
    ratio lies wholly outside ``[1/(1+t), 1+t]``."""
    max_grade_share: float = Field(default=0.5, gt=0.0, le=1.0)
    max_psi: float = Field(default=0.25, gt=0.0)
    max_ece: float = Field(default=0.05, gt=0.0)
    challenger_margin: float = Field(default=0.0, ge=0.0)
    """The model fails when the challenger's test AUC exceeds its own by more than the margin
    and DeLong's paired test finds the challenger better at ``challenger_alpha``."""
    challenger_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    champion_margin: float = Field(default=0.0, ge=0.0)
    """Promotion: the challenger passes when its AUC >= champion AUC - margin on the same rows."""


class RegistryConfig(BaseModel):
    """MLflow tracking and registry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    tracking_uri: str = "sqlite:///mlflow.db"
    """Used unless ``MLFLOW_TRACKING_URI`` is set or a tracking URI is passed explicitly."""
    experiment_name: str = "riskgrade"
    registered_model_name: str = Field(default="riskgrade", min_length=1)
    challenger_alias: str = "challenger"
    champion_alias: str = "champion"


class TrainConfig(BaseModel):
    """Everything a training run needs besides the data (maps to ``params.yaml`` ``train:``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=42, ge=0)
    target: str = "default_12m"
    time_col: str = "snapshot_date"
    id_col: str = "customer_id"
    split: SplitConfig = SplitConfig()
    lgbm: LgbmConfig = LgbmConfig()
    optuna: OptunaConfig = OptunaConfig()
    challenger: ChallengerConfig = ChallengerConfig()
    family: FamilyConfig = FamilyConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    validation: ValidationConfig = ValidationConfig()
    gates: GateConfig = GateConfig()
    registry: RegistryConfig = RegistryConfig()
    model_version_prefix: str = "rg"
    """Bundle version label: ``<prefix>-<utc timestamp>-<sha prefix>``."""
    show_progress: bool = True
