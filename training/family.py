"""Model family: LightGBM (plain or configured), WOE scorecard or a blend, chosen on training data.

Every family ships as one LightGBM text model, so bundle, serving, batch scoring and the SHAP
explanations (``pred_contrib``) stay on a single code path:

- the scorecard ``intercept + sum_j coef_j * woe_j(bin_j(x_j))`` becomes one tree per feature
  that splits on the feature's bin edges (numeric) or code sets (categorical), with a leaf per
  bin holding ``coef_j * woe``; missing values (and unseen codes) reach the missing bin's leaf.
  Its ``pred_contrib`` for feature ``j`` is exactly that feature's term minus its training mean;
- a blend ``w * lgbm_margin + (1 - w) * scorecard_logit`` is the concatenation of both models'
  trees with leaf values scaled by ``w`` and ``1 - w``; the LightGBM ensemble (the equal-weight
  average of the configured and the plain LightGBM margins) is built the same way.

``auto`` scores every candidate by K-fold cross-validated AUC on the training rows only (folds
grouped by customer when snapshots repeat customers; the test window is never seen). The
candidates are the configured LightGBM, a plain LightGBM (library defaults, monotone only where
the risk direction is known), their equal-weight ensemble, the scorecard and a blend of the best
LightGBM candidate with the scorecard. With the ``one_se`` rule the reference candidate
(``family.reference``, default the ensemble) ships unless another beats it by more than one
standard error of the per-fold AUC difference, so a noisy cross-validation does not swap in a
model that is not clearly better; ``best`` takes the best mean. The ensemble is the reference
because on a few hundred defaults the fold AUCs of two good LightGBM settings differ by noise
more than by skill: their average keeps most of the better one's gain and rarely falls below
either, where picking one of them by a noisy score often picks the worse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from features.metrics import auc
from features.spec import FeatureSpec
from training.challenger import FeatureBins, WoeScorecard, fit_scorecard
from training.config import LgbmConfig, TrainConfig
from training.errors import TrainingError
from training.evaluate import check_target
from training.fit import (
    FittedModel,
    fit_fixed_rounds,
    fit_lgbm,
    lgb_params,
    normalise_model_text,
    tune_lgbm,
)
from training.split import Split

FAMILIES = ("lgbm_plain", "lgbm", "ensemble", "scorecard", "blend")
LGBM_FAMILIES = ("lgbm", "lgbm_plain", "ensemble")
"""Families made of LightGBM trees only (the blend's LightGBM part is one of them)."""
ENSEMBLE_WEIGHT = 0.5
"""Share of the configured LightGBM in the ensemble's margin (the plain one has the rest)."""
_DESCRIPTIONS = {
    "lgbm_plain": "LightGBM binary, plain reference settings, monotone where risk direction known",
    "lgbm": "LightGBM binary, configured settings, monotone constraints from risk directions",
    "ensemble": "LightGBM ensemble: mean margin of the configured and the plain LightGBM",
    "scorecard": "logistic regression on WOE bins, one LightGBM tree per feature",
    "blend": "blend of the LightGBM margin and the WOE scorecard logit (weight {w:.2f} / {v:.2f})",
}
_NAN_RIGHT = 8
"""``decision_type`` of a numeric split: missing type NaN, missing values go right."""
_CATEGORICAL_NAN_RIGHT = 9
"""``decision_type`` of a categorical split: missing type NaN (missing and unknown go right)."""


def describe_family(family: str, weight: float) -> str:
    """One line naming a model family (report); ``weight`` is the blend's LightGBM share."""
    return _DESCRIPTIONS[family].format(w=weight, v=1.0 - weight)


# --------------------------------------------------------------------------- model text


@dataclass
class _Tree:
    """A LightGBM tree under construction (nodes and leaves in LightGBM's array layout)."""

    feature: int
    split_gain: list[float] = field(default_factory=list)
    threshold: list[float | int] = field(default_factory=list)
    decision_type: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    internal_value: list[float] = field(default_factory=list)
    internal_count: list[int] = field(default_factory=list)
    leaf_value: list[float] = field(default_factory=list)
    leaf_count: list[int] = field(default_factory=list)
    cat_words: list[list[int]] = field(default_factory=list)

    def leaf(self, value: float, count: int) -> tuple[int, float, int]:
        """Add a leaf; returns (child reference, sum of value*count, count)."""
        self.leaf_value.append(value)
        self.leaf_count.append(max(count, 1))
        return ~(len(self.leaf_value) - 1), value * max(count, 1), max(count, 1)

    def node(
        self,
        threshold: float | int,
        decision_type: int,
        build_left: Callable[[], tuple[int, float, int]],
        build_right: Callable[[], tuple[int, float, int]],
    ) -> tuple[int, float, int]:
        """Add a split whose children are built by the two callables; gain = explained SS."""
        index = len(self.left)
        for values in (self.split_gain, self.threshold, self.decision_type, self.left, self.right):
            values.append(0)
        self.internal_value.append(0.0)
        self.internal_count.append(0)
        left, left_sum, left_n = build_left()
        right, right_sum, right_n = build_right()
        total, n = left_sum + right_sum, left_n + right_n
        mean = total / n
        self.threshold[index] = threshold
        self.decision_type[index] = decision_type
        self.left[index], self.right[index] = left, right
        self.split_gain[index] = (
            left_n * (left_sum / left_n - mean) ** 2 + right_n * (right_sum / right_n - mean) ** 2
        )
        self.internal_value[index] = mean
        self.internal_count[index] = n
        return index, total, n

    def text(self, index: int) -> str:
        def join(values: Sequence[object]) -> str:
            return " ".join(repr(float(v)) if isinstance(v, float) else str(v) for v in values)

        lines = [
            f"Tree={index}",
            f"num_leaves={len(self.leaf_value)}",
            f"num_cat={len(self.cat_words)}",
            f"split_feature={join([self.feature] * len(self.left))}",
            f"split_gain={join(self.split_gain)}",
            f"threshold={join(self.threshold)}",
            f"decision_type={join(self.decision_type)}",
            f"left_child={join(self.left)}",
            f"right_child={join(self.right)}",
            f"leaf_value={join(self.leaf_value)}",
            f"leaf_weight={join([float(c) for c in self.leaf_count])}",
            f"leaf_count={join(self.leaf_count)}",
            f"internal_value={join(self.internal_value)}",
            f"internal_weight={join([float(c) for c in self.internal_count])}",
            f"internal_count={join(self.internal_count)}",
        ]
        if self.cat_words:
            bounds = np.cumsum([0, *(len(w) for w in self.cat_words)])
            lines.append(f"cat_boundaries={join([int(b) for b in bounds])}")
            lines.append(f"cat_threshold={join([w for ws in self.cat_words for w in ws])}")
        lines += ["is_linear=0", "shrinkage=1", "", ""]
        return "\n".join(lines)


def _numeric_tree(
    j: int, bins: FeatureBins, values: np.ndarray, missing: float, column: np.ndarray
) -> _Tree:
    """Root sends every present value left (threshold = largest float), NaN right."""
    tree = _Tree(feature=j)
    present = ~np.isnan(column)
    index = np.searchsorted(bins.edges, column[present], side="left")
    counts = np.bincount(index, minlength=len(values))

    def bins_between(lo: int, hi: int) -> Callable[[], tuple[int, float, int]]:
        if lo == hi:
            return lambda: tree.leaf(float(values[lo]), int(counts[lo]))
        mid = (lo + hi) // 2
        return lambda: tree.node(
            float(bins.edges[mid]), _NAN_RIGHT, bins_between(lo, mid), bins_between(mid + 1, hi)
        )

    tree.node(
        float(np.finfo(np.float64).max),
        _NAN_RIGHT,
        bins_between(0, len(values) - 1),
        lambda: tree.leaf(missing, int((~present).sum())),
    )
    return tree


def _categorical_tree(
    j: int, bins: FeatureBins, values: np.ndarray, missing: float, column: np.ndarray
) -> _Tree:
    """Code sets go left; missing values and codes not seen in training end on the right spine."""
    tree = _Tree(feature=j)
    codes = [int(c) for c in bins.edges]
    known = np.isin(column, bins.edges)
    counts = dict(zip(*np.unique(column[known], return_counts=True), strict=True))

    def split(subset: list[int], with_missing: bool) -> Callable[[], tuple[int, float, int]]:
        if with_missing and not subset:
            return lambda: tree.leaf(missing, int((~known).sum()))
        if not with_missing and len(subset) == 1:
            code = subset[0]
            return lambda: tree.leaf(
                float(values[codes.index(code)]), int(counts.get(float(code), 0))
            )
        half = (len(subset) + 1) // 2
        left_codes, rest = subset[:half], subset[half:]

        def build() -> tuple[int, float, int]:
            words = [0] * (max(left_codes) // 32 + 1)
            for code in left_codes:
                words[code // 32] |= 1 << (code % 32)
            tree.cat_words.append(words)
            return tree.node(
                len(tree.cat_words) - 1,
                _CATEGORICAL_NAN_RIGHT,
                split(left_codes, False),
                split(rest, with_missing),
            )

        return build

    split(codes, True)()
    return tree


def _constant_tree(j: int, value: float, n: int) -> _Tree:
    tree = _Tree(feature=j)
    tree.node(
        float(np.finfo(np.float64).max),
        _NAN_RIGHT,
        lambda: tree.leaf(value, n),
        lambda: tree.leaf(value, 0),
    )
    return tree


def _feature_infos(x: np.ndarray, spec: FeatureSpec) -> str:
    infos = []
    for j, feature in enumerate(spec.features):
        column = x[:, j][~np.isnan(x[:, j])]
        if column.size == 0:
            infos.append("none")
        elif feature.kind.value == "categorical":
            infos.append(":".join(str(int(c)) for c in np.unique(column)))
        else:
            infos.append(f"[{float(column.min())!r}:{float(column.max())!r}]")
    return " ".join(infos)


def _header(spec: FeatureSpec, infos: str) -> str:
    return "\n".join(
        [
            "tree",
            "version=v4",
            "num_class=1",
            "num_tree_per_iteration=1",
            "label_index=0",
            f"max_feature_idx={len(spec.features) - 1}",
            "objective=binary sigmoid:1",
            f"feature_names={' '.join(spec.names)}",
            f"feature_infos={infos}",
            "",
            "",
        ]
    )


_TAIL = "end of trees\n\nparameters:\n[boosting: gbdt]\n[objective: binary]\nend of parameters\n\n"


def _canonical(text: str) -> str:
    """Load and re-write through LightGBM (tree sizes, importances, its number format)."""
    return normalise_model_text(lgb.Booster(model_str=text).model_to_string())


def scorecard_model_text(scorecard: WoeScorecard, spec: FeatureSpec, x_train: np.ndarray) -> str:
    """The WOE scorecard as a LightGBM text model predicting exactly its logit.

    Args:
        scorecard: the fitted scorecard (bins and logistic regression).
        spec: feature spec of the matrix columns.
        x_train: the training rows (leaf counts, i.e. the SHAP expectation, come from them).
    """
    coef = scorecard.model.coef_[0]
    intercept = float(scorecard.model.intercept_[0])
    trees: list[_Tree] = []
    for j, bins in enumerate(scorecard.bins):
        if coef[j] == 0.0 or not scorecard.active[j]:
            continue
        # The intercept rides on the first tree (it shifts that tree's leaves and expectation).
        shift = intercept if not trees else 0.0
        values = coef[j] * bins.woe + shift
        missing = float(coef[j] * bins.woe_missing + shift)
        build = _categorical_tree if bins.categorical and len(bins.edges) else _numeric_tree
        if bins.categorical and not len(bins.edges):
            trees.append(_constant_tree(j, missing, len(x_train)))
        else:
            trees.append(build(j, bins, values, missing, x_train[:, j]))
    if not trees:
        trees.append(_constant_tree(0, intercept, len(x_train)))
    body = "".join(tree.text(i) for i, tree in enumerate(trees))
    return _canonical(_header(spec, _feature_infos(x_train, spec)) + body + _TAIL)


def _split_model(text: str) -> tuple[str, list[str], str]:
    """Header (without tree sizes), tree blocks and tail of a LightGBM model text."""
    head, _, rest = text.partition("\nTree=")
    body, _, tail = ("Tree=" + rest).partition("end of trees")
    header = "\n".join(ln for ln in head.split("\n") if not ln.startswith("tree_sizes=")) + "\n"
    blocks = [b.strip("\n") for b in ("\n" + body).split("\nTree=") if b.strip()]
    return header, blocks, "end of trees" + tail


def _scaled_block(block: str, weight: float, index: int) -> str:
    lines = block.split("\n")[1:]  # drop the old "Tree=k" index line
    out = [f"Tree={index}"]
    for line in lines:
        key, _, value = line.partition("=")
        if key in ("leaf_value", "internal_value"):
            value = " ".join(repr(float(v) * weight) for v in value.split())
        elif key == "shrinkage":
            value = repr(float(value) * weight)
        out.append(f"{key}={value}")
    return "\n".join(out) + "\n\n\n"


def blend_model_text(lgbm_text: str, scorecard_text: str, weight: float) -> str:
    """One LightGBM text model predicting ``weight*lgbm + (1-weight)*scorecard`` margins.

    Any two LightGBM texts on the same features combine this way (the ensemble of two
    LightGBM models too); SHAP contributions of the result are the same weighted sum.

    Raises:
        TrainingError: if the weight is outside [0, 1] or the two models' features differ.
    """
    if not 0.0 <= weight <= 1.0:
        raise TrainingError(f"blend weight must be in [0, 1], got {weight}")
    header, lgbm_trees, tail = _split_model(lgbm_text)
    sc_header, sc_trees, _ = _split_model(scorecard_text)
    names = [ln for ln in header.split("\n") if ln.startswith("feature_names=")]
    if names != [ln for ln in sc_header.split("\n") if ln.startswith("feature_names=")]:
        raise TrainingError("blend: the two models have different features")
    parts = [(b, weight) for b in lgbm_trees] + [(b, 1.0 - weight) for b in sc_trees]
    body = "".join(_scaled_block(b, w, i) for i, (b, w) in enumerate(parts))
    return _canonical(header.rstrip("\n") + "\n\n" + body + tail)


# --------------------------------------------------------------------------- choice


@dataclass(frozen=True)
class FamilyChoice:
    """The family that won and the cross-validated AUC of each candidate."""

    family: str
    weight: float
    """LightGBM share of the blended margin (1 = LightGBM alone, 0 = scorecard alone)."""
    choice: str
    """What was asked: ``auto`` or a forced family."""
    lgbm_trees: int
    """Trees of the configured LightGBM candidate (its early-stopped size; used in outer CV)."""
    lgbm_variant: int = 0
    """Index of the LightGBM parameter set chosen in ``family.lgbm_variants``."""
    blend_lgbm: str = "lgbm"
    """The LightGBM candidate inside the blend: ``lgbm``, ``lgbm_plain`` or ``ensemble``."""
    rule: str = ""
    """The selection rule that picked the family (empty when the family was forced)."""
    reference: str = "lgbm"
    """The candidate the others' per-fold gains are measured against (``one_se`` default)."""
    dropped: tuple[str, ...] = ()
    """Candidates left out of the choice because their model failed a validation gate."""
    blend_cv_weight: float = 1.0
    """The blend candidate's best LightGBM share in cross-validation (whichever family won)."""
    folds: int = 0
    fold_auc: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Per candidate family, the AUC of each fold (blend: at the chosen weight)."""

    def without(self, family: str, se_multiplier: float) -> FamilyChoice | None:
        """The choice again from the recorded fold AUCs, ``family`` (and earlier drops) left out.

        The rule and reference stay (a dropped reference is replaced by the best remaining
        mean). ``None`` when the family was forced or no candidate is left.
        """
        dropped = (*self.dropped, family)
        left = {k: v for k, v in self.fold_auc.items() if k not in dropped}
        if not self.rule or not left:
            return None
        reference = self.reference
        if reference not in left:
            reference = max(left, key=lambda k: float(np.nanmean(left[k])))
        chosen = select_family(left, self.rule, se_multiplier, reference)
        weight = {"scorecard": 0.0, "blend": self.blend_cv_weight}.get(chosen, 1.0)
        return replace(self, family=chosen, weight=weight, dropped=dropped)

    def metrics(self) -> dict[str, float | str]:
        """``model.family``, the blend, and per candidate ``cv.<family>.auc_mean/std``.

        Candidates other than the reference also get ``cv.<family>.auc_gain`` and
        ``cv.<family>.auc_gain_se``: mean and standard error of their per-fold AUC difference
        from the reference, the figures the ``one_se`` rule compares.
        """
        out: dict[str, float | str] = {
            "model.family": self.family,
            "model.family_choice": self.choice,
            "model.blend_weight": self.weight,
            "model.lgbm_trees": float(self.lgbm_trees),
            "model.lgbm_variant": float(self.lgbm_variant),
        }
        if self.family == "blend":
            out["model.family_blend_lgbm"] = self.blend_lgbm
        if self.rule:
            out["model.family_rule"] = self.rule
            out["model.family_reference"] = self.reference
        if self.dropped:
            out["model.family_dropped"] = ",".join(self.dropped)
        if self.folds:
            out["cv.family_folds"] = float(self.folds)
        for family, values in self.fold_auc.items():
            out[f"cv.{family}.auc_mean"] = float(np.nanmean(values))
            out[f"cv.{family}.auc_std"] = float(np.nanstd(values))
            if family != self.reference and self.reference in self.fold_auc:
                gain, se = paired_gain(values, self.fold_auc[self.reference])
                out[f"cv.{family}.auc_gain"] = gain
                out[f"cv.{family}.auc_gain_se"] = se
        return out


def paired_gain(values: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the per-fold differences ``values - reference``.

    Folds where either AUC is undefined (NaN) are left out; with fewer than two folds left the
    standard error is infinite.
    """
    diff = np.asarray(values, dtype=float) - np.asarray(reference, dtype=float)
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return math.nan, math.inf
    se = float(np.std(diff, ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.inf
    return float(diff.mean()), se


def select_family(
    fold_auc: dict[str, tuple[float, ...]],
    rule: str,
    se_multiplier: float = 1.0,
    reference: str = "lgbm",
) -> str:
    """Pick a family from the per-fold AUCs of the candidates (same folds for all).

    Args:
        fold_auc: per candidate, its AUC on each fold.
        rule: ``best`` takes the best mean AUC; ``one_se`` keeps ``reference`` unless another
            candidate's mean gain over it exceeds ``se_multiplier`` standard errors of the
            per-fold difference, and then takes the best mean among those that do.
        se_multiplier: see ``rule``.
        reference: the default candidate of ``one_se`` (must be in ``fold_auc``).

    Returns:
        The chosen candidate's name.

    Raises:
        TrainingError: for an unknown rule or a missing reference candidate.
    """

    def mean(name: str) -> float:
        return float(np.nanmean(fold_auc[name]))

    if rule == "best":
        return max(fold_auc, key=mean)
    if rule != "one_se":
        raise TrainingError(f"unknown family selection rule '{rule}' (use one_se or best)")
    if reference not in fold_auc:
        raise TrainingError(f"the one_se rule needs the reference candidate '{reference}'")
    winners = [reference]
    for name, values in fold_auc.items():
        gain, se = paired_gain(values, fold_auc[reference])
        if name != reference and gain > se_multiplier * se:
            winners.append(name)
    return max(winners, key=mean)


def _folds(
    y: np.ndarray, groups: np.ndarray | None, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    if groups is not None and np.unique(groups).size < len(groups):
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y, groups))
    plain = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(plain.split(np.zeros(len(y)), y))


def _variant(lgbm_config: LgbmConfig, config: TrainConfig, index: int) -> LgbmConfig:
    return lgbm_config.model_copy(update=config.family.lgbm_variants[index])


def plain_config(config: TrainConfig) -> LgbmConfig:
    """The plain reference LightGBM: ``config.lgbm`` with ``family.plain`` (monotone kept)."""
    return config.lgbm.model_copy(update=config.family.plain)


def _lgbm_parts(
    choice: FamilyChoice, lgbm_config: LgbmConfig, config: TrainConfig
) -> list[tuple[LgbmConfig, int]]:
    """Settings and tree count of each LightGBM inside the chosen family (none: scorecard)."""
    if choice.family == "scorecard":
        return []
    which = choice.family if choice.family in LGBM_FAMILIES else choice.blend_lgbm
    configured = (_variant(lgbm_config, config, choice.lgbm_variant), choice.lgbm_trees)
    plain = (plain_config(config), config.family.plain_rounds)
    return {"lgbm": [configured], "lgbm_plain": [plain], "ensemble": [configured, plain]}[which]


def _lgbm_text(texts: list[str]) -> str | None:
    """One LightGBM model text from the fitted parts (the ensemble averages two margins)."""
    if not texts:
        return None
    if len(texts) == 1:
        return texts[0]
    return blend_model_text(texts[0], texts[1], ENSEMBLE_WEIGHT)


def _fold_auc(y: np.ndarray, score: np.ndarray) -> float:
    return auc(y.astype(float), score) if np.unique(y).size == 2 else math.nan


def choose_family(
    x: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    config: TrainConfig,
    rounds: int,
    groups: np.ndarray | None = None,
    lgbm_config: LgbmConfig | None = None,
) -> FamilyChoice:
    """Cross-validate the candidate families on training rows and pick one.

    Candidates: ``lgbm`` (the configured LightGBM, its best parameter set and tree count),
    ``lgbm_plain`` (LightGBM defaults, ``family.plain_rounds`` trees), ``scorecard`` and
    ``blend`` (the better of the two LightGBM candidates with the scorecard, best weight).
    ``config.family.rule`` picks, around ``config.family.reference``.

    Args:
        x: training rows (never the test window), columns in spec order.
        y: their 0/1 labels.
        spec: feature spec.
        config: training configuration (``family``, ``challenger``, ``lgbm``, ``seed``).
        rounds: the early-stopped tree count; the configured LightGBM is scored with this count
            times each of ``config.family.tree_factors`` and keeps the best.
        groups: customer of each row; folds keep a customer's snapshots together.
        lgbm_config: LightGBM parameters (default ``config.lgbm``; e.g. the tuned ones).

    Returns:
        The choice; a forced ``lgbm``, ``lgbm_plain`` or ``scorecard`` is returned without
        cross-validation.
    """
    wanted = config.family.choice
    if wanted in (*LGBM_FAMILIES, "scorecard"):
        weight = 0.0 if wanted == "scorecard" else 1.0
        return FamilyChoice(family=wanted, weight=weight, choice=wanted, lgbm_trees=rounds)
    minority = int(min(y.sum(), len(y) - y.sum()))
    k = min(config.family.cv_folds, minority)
    if k < 2:
        raise TrainingError(
            f"choosing the model family needs at least 2 rows of each class in the training "
            f"window, got {minority}"
        )
    lgbm_config = lgbm_config or config.lgbm
    weights = sorted(config.family.blend_weights)
    counts = sorted(
        {
            max(1, min(round(f * rounds), lgbm_config.num_boost_round))
            for f in config.family.tree_factors
        }
    )
    folds = _folds(y, groups, k, config.seed)
    variants = [_variant(lgbm_config, config, i) for i in range(len(config.family.lgbm_variants))]
    plain, plain_rounds = plain_config(config), config.family.plain_rounds
    candidates = [(v, n) for v in range(len(variants)) for n in counts]
    margins: dict[tuple[int, int], list[np.ndarray]] = {c: [] for c in candidates}
    plain_margins: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    for train, test in folds:
        for v, variant in enumerate(variants):
            booster = fit_fixed_rounds(x[train], y[train], spec, variant, config.seed, counts[-1])
            for n in counts:
                margins[(v, n)].append(
                    np.asarray(booster.predict(x[test], raw_score=True, num_iteration=n))
                )
        booster = fit_fixed_rounds(x[train], y[train], spec, plain, config.seed, plain_rounds)
        plain_margins.append(np.asarray(booster.predict(x[test], raw_score=True)))
        card = fit_scorecard(x[train], y[train], spec, config.challenger, config.seed)
        logits.append(card.logit(x[test]))
    tests = [y[test] for _, test in folds]

    def fold_aucs(scores: list[np.ndarray]) -> tuple[float, ...]:
        return tuple(_fold_auc(t, s) for t, s in zip(tests, scores, strict=True))

    lgbm_auc = {c: fold_aucs(margins[c]) for c in candidates}
    best = max(candidates, key=lambda c: float(np.nanmean(lgbm_auc[c])))
    lgbm_margins = {
        "lgbm_plain": plain_margins,
        "lgbm": margins[best],
        "ensemble": [
            ENSEMBLE_WEIGHT * m + (1.0 - ENSEMBLE_WEIGHT) * p
            for m, p in zip(margins[best], plain_margins, strict=True)
        ],
    }
    fold_auc = {name: fold_aucs(scores) for name, scores in lgbm_margins.items()}
    fold_auc["scorecard"] = fold_aucs(logits)
    blend_lgbm = max(LGBM_FAMILIES, key=lambda name: float(np.nanmean(fold_auc[name])))
    base = lgbm_margins[blend_lgbm]
    blended = {
        w: fold_aucs([w * m + (1.0 - w) * s for m, s in zip(base, logits, strict=True)])
        for w in weights
    }
    best_weight = max(weights, key=lambda w: float(np.nanmean(blended[w])))
    fold_auc["blend"] = blended[best_weight]
    rule: str = config.family.rule
    if wanted == "blend":
        family, rule = "blend", ""
    else:
        family = select_family(fold_auc, rule, config.family.se_multiplier, config.family.reference)
    weight = {"scorecard": 0.0, "blend": best_weight}.get(family, 1.0)
    return FamilyChoice(
        family=family,
        weight=weight,
        choice=wanted,
        lgbm_trees=best[1],
        lgbm_variant=best[0],
        blend_lgbm=blend_lgbm,
        rule=rule,
        reference=config.family.reference,
        folds=k,
        fold_auc=fold_auc,
        blend_cv_weight=best_weight,
    )


# --------------------------------------------------------------------------- fitting


def family_model_text(
    choice: FamilyChoice,
    lgbm_text: str | None,
    scorecard: WoeScorecard | None,
    spec: FeatureSpec,
    x_train: np.ndarray,
) -> str:
    """Model text of the chosen family from its fitted parts (``None`` where not needed)."""
    if choice.family in LGBM_FAMILIES:
        if lgbm_text is None:
            raise TrainingError("the LightGBM family needs a fitted LightGBM model")
        return lgbm_text
    if scorecard is None:
        raise TrainingError(f"the {choice.family} family needs a fitted scorecard")
    card_text = scorecard_model_text(scorecard, spec, x_train)
    if choice.family == "scorecard":
        return card_text
    if lgbm_text is None:
        raise TrainingError("the blend family needs a fitted LightGBM model")
    return blend_model_text(lgbm_text, card_text, choice.weight)


def fit_family_fixed(
    x: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    config: TrainConfig,
    choice: FamilyChoice,
) -> lgb.Booster:
    """Fit the chosen family on rows, with the choice's LightGBM tree count (cross-validation)."""
    texts = [
        normalise_model_text(fit_fixed_rounds(x, y, spec, part, config.seed, n).model_to_string())
        for part, n in _lgbm_parts(choice, config.lgbm, config)
    ]
    card = (
        fit_scorecard(x, y, spec, config.challenger, config.seed)
        if choice.family in ("scorecard", "blend")
        else None
    )
    lgbm_text = _lgbm_text(texts)
    return lgb.Booster(model_str=family_model_text(choice, lgbm_text, card, spec, x))


def fit_model(
    x: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    split: Split,
    config: TrainConfig,
    groups: np.ndarray | None = None,
    choice: FamilyChoice | None = None,
) -> tuple[FittedModel, FamilyChoice]:
    """Fit the LightGBM model, choose the family on the training window, build its model.

    The configured LightGBM is fitted as always (tuned if configured, early stopping on the
    calibration window) and its tree count seeds the family cross-validation, which sees the
    training rows only (see ``choose_family``). Each LightGBM part of the chosen family is
    refitted on the training rows when its settings or tree count differ from that model's;
    the scorecard is fitted on the training rows.

    Args:
        x: all rows, columns in spec order.
        y: their 0/1 labels.
        spec: feature spec.
        split: the train / calibration / test windows.
        config: training configuration.
        groups: customer of each row (family folds keep a customer together).
        choice: a family already chosen (e.g. ``without`` a gate-failing one): built, not chosen.

    Returns:
        The model of the chosen family (LightGBM text) and the choice with its CV scores.
    """
    for name in ("train", "calibration", "test"):
        check_target(y[getattr(split, name)], name)
    tr, cal = split.train, split.calibration
    lgbm_config = tune_lgbm(
        x[tr], y[tr], x[cal], y[cal], spec, config.lgbm, config.optuna, config.seed
    )
    lgbm_model = fit_lgbm(x[tr], y[tr], x[cal], y[cal], spec, lgbm_config, config.seed)
    if choice is None:
        choice = choose_family(
            x[tr],
            y[tr],
            spec,
            config,
            lgbm_model.best_iteration,
            None if groups is None else groups[tr],
            lgbm_config,
        )
    parts = _lgbm_parts(choice, lgbm_config, config)
    if choice.family == "lgbm" and parts[0] == (lgbm_config, lgbm_model.best_iteration):
        return lgbm_model, choice  # the early-stopped model itself
    texts = [
        lgbm_model.model_text
        if (part, trees) == (lgbm_config, lgbm_model.best_iteration)
        else normalise_model_text(
            fit_fixed_rounds(x[tr], y[tr], spec, part, config.seed, trees).model_to_string()
        )
        for part, trees in parts
    ]
    card = (
        fit_scorecard(x[tr], y[tr], spec, config.challenger, config.seed)
        if choice.family in ("scorecard", "blend")
        else None
    )
    text = family_model_text(choice, _lgbm_text(texts), card, spec, x[tr])
    params: dict[str, object] = (
        lgb_params(spec, parts[0][0], config.seed) if parts else {"objective": "binary"}
    )
    booster = lgb.Booster(model_str=text)
    trees = parts[0][1] if choice.family in ("lgbm", "lgbm_plain") else booster.num_trees()
    model = FittedModel(booster=booster, params=params, best_iteration=trees, model_text=text)
    return model, choice
