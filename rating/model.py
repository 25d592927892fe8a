"""The rating model at inference: one LightGBM SHAP pass gives PD, grade, tier and reasons.

``booster.predict(X, pred_contrib=True)`` returns per-feature SHAP values in raw margin with
the expected value last; their row sum is the margin. Platt calibration maps the margin and,
scaled by its slope, the contributions onto calibrated log-odds, so everything downstream
(PD, grade, tier, group totals, reasons, explanation) comes from the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
from scipy.special import expit, logit

from features.spec import FeatureGroup, FeatureKind, FeatureSpec
from rating.bundle import MODEL_FILE, POLICY_FILE, Bundle, BundleError, load_bundle
from rating.calibration import PlattCalibration
from rating.explain import Explanation, explain
from rating.policy import (
    TIER_ORDER,
    CreditPolicy,
    DefaultStatus,
    HardRuleHit,
    RatingPolicy,
    Tier,
)
from rating.reasons import (
    MAX_REASONS,
    Reason,
    ReasonDictionary,
    eligible_mask,
    entries_by_index,
    reasons_from_indices,
    top_reason_indices,
)
from rating.scale import MasterScale


class ScoreInputError(ValueError):
    """The feature matrix or flags given for scoring are invalid."""


@dataclass(frozen=True)
class ScoreResult:
    """Scores of a batch of customers, row-aligned with the input matrix."""

    pd: np.ndarray
    """Calibrated PD, floored by the master scale."""
    log_odds: np.ndarray
    """Calibrated log-odds (before the floor): ``base + contributions.sum(axis=1)``."""
    points: np.ndarray
    """Scorecard points (PDO scale) of the floored PD."""
    grade: np.ndarray
    """Grade: the PD's band, or the default grade for a customer in default."""
    grade_index: np.ndarray
    model_tier: np.ndarray
    """Tier of the PD's band alone (object array of `Tier`)."""
    tier: np.ndarray
    """Tier after hard rules and default status (object array of `Tier`)."""
    contributions: np.ndarray
    """``(n, n_features)`` calibrated SHAP contributions in spec order."""
    base: np.ndarray
    """Calibrated base value per row (the portfolio average log-odds)."""
    group_contributions: dict[str, np.ndarray]
    """Feature group -> ``(n,)`` summed contributions."""
    hard_rules: list[list[HardRuleHit]]
    reasons: list[list[Reason]]
    """Hard rules first, then the default status, then the top adverse features."""
    defaults: list[DefaultStatus | None]
    """Default status at the rating date per row (None: not in default)."""

    def __len__(self) -> int:
        return int(self.pd.shape[0])

    @property
    def in_default(self) -> np.ndarray:
        """Boolean per row: in default at the rating date."""
        return np.array([d is not None for d in self.defaults], dtype=bool)


class RatingModel:
    """A loaded, verified bundle ready to score."""

    def __init__(self, bundle: Bundle, num_threads: int = 1) -> None:
        """Build the booster from the bundle's model text.

        Args:
            bundle: a bundle from `load_bundle` (already verified).
            num_threads: LightGBM prediction threads (1 keeps server workers independent).
        """
        self.bundle = bundle
        self.booster = lgb.Booster(model_str=bundle.model_text)
        if self.booster.num_feature() != len(bundle.spec.features):
            raise BundleError(
                f"model has {self.booster.num_feature()} features, "
                f"the spec {len(bundle.spec.features)}",
                MODEL_FILE,
            )
        self.num_threads = num_threads
        self._entries = entries_by_index(bundle.spec, bundle.reasons)
        self._eligible = eligible_mask(self._entries)
        self._tier_rank = bundle.policy.tier_index_of_grade_index(bundle.scale)
        self._categorical = [
            (j, f.name, len(f.categories))
            for j, f in enumerate(bundle.spec.features)
            if f.kind is FeatureKind.CATEGORICAL
        ]
        group_index = {group: g for g, group in enumerate(FeatureGroup)}
        self._group_of_feature = [
            (j, group_index[f.group]) for j, f in enumerate(bundle.spec.features)
        ]

    @classmethod
    def load(cls, directory: Path | str, expected_hash: str | None = None) -> RatingModel:
        """Load and verify a bundle folder, then build the model."""
        return cls(load_bundle(directory, expected_hash))

    @property
    def spec(self) -> FeatureSpec:
        """Feature spec (column order of the input matrix)."""
        return self.bundle.spec

    @property
    def scale(self) -> MasterScale:
        """Master scale."""
        return self.bundle.scale

    @property
    def policy(self) -> RatingPolicy:
        """Tiers, credit policies and hard rules."""
        return self.bundle.policy

    @property
    def calibration(self) -> PlattCalibration:
        """Platt calibration on the margin."""
        return self.bundle.calibration

    @property
    def reasons(self) -> ReasonDictionary:
        """Reason dictionary."""
        return self.bundle.reasons

    @property
    def policy_version(self) -> str:
        """Policy version plus the first 12 hex digits of the policy file's SHA-256."""
        return f"{self.policy.version}+{self.bundle.file_hashes[POLICY_FILE][:12]}"

    def policy_of(self, tier: Tier | str) -> CreditPolicy:
        """Credit policy of a tier."""
        return self.policy.policy_of_tier(tier)

    def _check_matrix(self, x: np.ndarray) -> np.ndarray:
        n_features = len(self.spec.features)
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != n_features:
            shape = getattr(x, "shape", type(x).__name__)
            raise ScoreInputError(
                f"x must be a 2-D array with {n_features} columns in spec order, got {shape}"
            )
        if x.dtype.kind not in "fiub":
            raise ScoreInputError(f"x must be numeric, got dtype {x.dtype}")
        matrix = np.ascontiguousarray(x, dtype=np.float64)
        infinite = np.isinf(matrix)
        if infinite.any():
            row, col = (int(v) for v in np.argwhere(infinite)[0])
            raise ScoreInputError(
                f"feature '{self.spec.features[col].name}' is infinite at row {row} "
                f"(use NaN for missing)"
            )
        for j, name, n_levels in self._categorical:
            column = matrix[:, j]
            known = ~np.isnan(column)
            bad = known & ((column != np.floor(column)) | (column < 0) | (column >= n_levels))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ScoreInputError(
                    f"categorical feature '{name}' needs integer codes in [0, {n_levels}) or NaN, "
                    f"got {float(column[row])} at row {row}"
                )
        return matrix

    def _flag_columns(
        self, matrix: np.ndarray, flags: Mapping[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        columns = {}
        names = self.spec.names
        for flag in self.policy.flag_names:
            if flags is not None and flag in flags:
                columns[flag] = np.asarray(flags[flag], dtype=np.float64).reshape(-1)
            elif flag in names:
                columns[flag] = matrix[:, names.index(flag)]
            else:
                raise ScoreInputError(
                    f"hard-rule flag '{flag}' is neither in the flags given nor a model feature"
                )
        return columns

    def score(
        self,
        x: np.ndarray,
        flags: Mapping[str, np.ndarray] | None = None,
        *,
        defaults: Sequence[DefaultStatus | None] | None = None,
        k: int = MAX_REASONS,
        num_threads: int | None = None,
    ) -> ScoreResult:
        """Score a batch: PD, grade, tiers, points, contributions, hard rules and reasons.

        This is the one place where status overrides the model: a hard rule forces the
        restricted tier, a default at the rating date the default grade and the restricted
        tier; their reasons come first (hard rules, then the default), before the features.
        The PD, points and contributions stay the model's.

        Args:
            x: ``(n, n_features)`` float matrix in spec order; NaN for missing values,
                categorical features as integer codes into their ``categories``.
            flags: hard-rule flags (name -> ``(n,)`` 0/1); a flag not given is read from
                the model feature of the same name.
            defaults: per row, the default status at the rating date (see
                `rating.policy.default_status`); None: nobody is in default.
            k: at most this many reasons per customer.
            num_threads: LightGBM threads for this call (default: the model's); rows are
                independent, so the values do not depend on it.

        Raises:
            ScoreInputError: naming the offending feature/flag and row.
        """
        matrix = self._check_matrix(x)
        n = matrix.shape[0]
        try:
            hits = self.policy.hard_rule_hits(self._flag_columns(matrix, flags), n_rows=n)
        except ValueError as error:
            raise ScoreInputError(str(error)) from error
        statuses: list[DefaultStatus | None] = [None] * n if defaults is None else list(defaults)
        if len(statuses) != n:
            raise ScoreInputError(f"defaults has {len(statuses)} entries for {n} rows")
        raw: np.ndarray
        if n == 0:
            raw = np.zeros((0, len(self.spec.features) + 1))
        else:
            threads = self.num_threads if num_threads is None else num_threads
            raw = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=threads))
        scaled = self.calibration.scale_contributions(raw)
        contributions = scaled[:, :-1]
        base = scaled[:, -1]
        log_odds = scaled.sum(axis=1)

        pd = self.scale.floor_pd(expit(log_odds))
        band_index = self.scale.grade_index(pd)
        tier_rank = self._tier_rank[band_index]
        model_tier = np.asarray(TIER_ORDER, dtype=object)[tier_rank]
        in_default = np.array([s is not None for s in statuses], dtype=bool)
        grade_index = np.where(in_default, self.scale.default_index, band_index)
        tier = model_tier.copy()
        tier[np.array([bool(h) for h in hits], dtype=bool) | in_default] = Tier.RESTRICTED
        # Summed feature by feature in spec order, as `rating.explain` sums one customer's: a
        # matrix product's rounding would depend on the number of rows in the batch.
        group_totals = np.zeros((n, len(FeatureGroup)))
        for j, g in self._group_of_feature:
            group_totals[:, g] += contributions[:, j]
        top = top_reason_indices(contributions, self._eligible, k)
        reasons = [
            reasons_from_indices(
                top[i],
                contributions[i],
                matrix[i],
                self._entries,
                hits[i],
                k,
                statuses[i],
                features=self.spec.features,
            )
            for i in range(n)
        ]
        return ScoreResult(
            pd=pd,
            log_odds=log_odds,
            points=self.scale.points.points(logit(pd)),
            grade=np.asarray(self.scale.names, dtype=object)[grade_index],
            grade_index=grade_index,
            model_tier=model_tier,
            tier=tier,
            contributions=contributions,
            base=base,
            group_contributions={
                group.value: group_totals[:, g] for g, group in enumerate(FeatureGroup)
            },
            hard_rules=hits,
            reasons=reasons,
            defaults=statuses,
        )

    def explain(self, result: ScoreResult, row: int) -> Explanation:
        """Explain one scored row on the master scale and tiers (see `rating.explain`)."""
        if not 0 <= row < len(result):
            raise IndexError(f"row {row} out of range for a result of {len(result)} rows")
        return explain(
            result.contributions[row],
            float(result.base[row]),
            self.spec,
            self.scale,
            self.policy,
            hard_rules=result.hard_rules[row],
            in_default=result.defaults[row] is not None,
        )
