"""Migration between two rating runs: matrices of tiers and grades, and every move explained.

A customer is *downgraded* when its (tier, grade) worsens between the runs and *upgraded* when
it improves (tier first, so a hard rule moving a customer into the restricted tier counts as a
downgrade even if its grade stays). The move is explained by the difference of the two
calibrated SHAP vectors, exactly as `rating.explain.explain_migration` does for one customer
(the vectorised table here agrees with it; `explain_customer` returns the full object): the
factors that moved the customer most in the direction of the move, in the reason dictionary's
words, and the change of each feature group's total contribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.spec import FeatureDef, FeatureGroup, FeatureKind, FeatureSpec, RiskDirection
from monitoring.config import MonitoringError
from monitoring.store import StoredRun
from rating.explain import PROTECTED_FACTOR, Migration, explain_migration
from rating.policy import TIER_ORDER, HardRuleHit, RatingPolicy
from rating.reasons import ReasonDictionary, ReasonText, derive_text
from rating.scale import MasterScale

TIER_LABELS: list[str] = [t.value for t in TIER_ORDER]

MOVE_COLUMNS = [
    "customer_id",
    "industry",
    "direction",
    "previous_grade",
    "current_grade",
    "grade_notches",
    "previous_tier",
    "current_tier",
    "tier_changed",
    "previous_pd",
    "current_pd",
    "delta_log_odds",
    "base_delta",
    "main_group",
    *[f"delta_{g.value}" for g in FeatureGroup],
    "new_default",
    "hard_rules_added",
    "hard_rules_removed",
    "explanation",
    "factors",
]


@dataclass(frozen=True)
class MigrationMatrix:
    """Counts and row shares of customers from each previous label to each current label."""

    counts: pd.DataFrame
    """Index: previous label, columns: current label (both in best-to-worst order)."""
    shares: pd.DataFrame
    """Counts divided by their row total (NaN for an empty row)."""
    new: int
    """Customers rated now but not in the previous run."""
    exited: int
    """Customers of the previous run no longer rated."""

    @property
    def stayed(self) -> int:
        """Customers on the diagonal."""
        return int(np.trace(self.counts.to_numpy()))

    @property
    def downgrades(self) -> int:
        """Customers above the diagonal (moved to a worse label)."""
        return int(np.triu(self.counts.to_numpy(), 1).sum())

    @property
    def upgrades(self) -> int:
        """Customers below the diagonal (moved to a better label)."""
        return int(np.tril(self.counts.to_numpy(), -1).sum())

    @property
    def is_diagonal(self) -> bool:
        """No customer changed label."""
        return self.downgrades == 0 and self.upgrades == 0


def migration_matrix(
    previous: pd.Series, current: pd.Series, labels: Sequence[str]
) -> MigrationMatrix:
    """Migration matrix of two labelings indexed by customer id.

    Args:
        previous: customer id -> label in the previous run.
        current: customer id -> label in the current run.
        labels: every label, best to worst.

    Raises:
        MonitoringError: if a label is not in ``labels`` or an index repeats.
    """
    for name, series in (("previous", previous), ("current", current)):
        if not series.index.is_unique:
            raise MonitoringError(f"{name} ratings repeat a customer id")
        unknown = sorted(set(series.astype(str)) - set(labels))
        if unknown:
            raise MonitoringError(f"{name} ratings hold labels {unknown} not in {list(labels)}")
    common = previous.index.intersection(current.index)
    pair = pd.DataFrame(
        {
            "previous": pd.Categorical(previous.loc[common].astype(str), categories=labels),
            "current": pd.Categorical(current.loc[common].astype(str), categories=labels),
        }
    )
    counts = pd.crosstab(pair["previous"], pair["current"], dropna=False).reindex(
        index=list(labels), columns=list(labels), fill_value=0
    )
    counts.index.name, counts.columns.name = "previous", "current"
    totals = counts.sum(axis=1).replace(0, np.nan)
    return MigrationMatrix(
        counts=counts.astype(np.int64),
        shares=counts.div(totals, axis=0),
        new=len(current.index.difference(previous.index)),
        exited=len(previous.index.difference(current.index)),
    )


def project(contributions: np.ndarray, names: Sequence[str], onto: Sequence[str]) -> np.ndarray:
    """Columns of ``contributions`` (named ``names``) in the order ``onto``; absent ones as 0."""
    position = {name: j for j, name in enumerate(names)}
    out = np.zeros((contributions.shape[0], len(onto)), dtype=np.float64)
    for k, name in enumerate(onto):
        if name in position:
            out[:, k] = contributions[:, position[name]]
    return out


def _flip(feature: FeatureDef) -> FeatureDef:
    flipped = {RiskDirection.UP: RiskDirection.DOWN, RiskDirection.DOWN: RiskDirection.UP}
    return feature.model_copy(update={"risk_direction": flipped[feature.risk_direction]})


def improvement_text(feature: FeatureDef) -> ReasonText:
    """The favourable counterpart of a feature's reason text ("Low debt ratio" for an upgrade)."""
    if feature.kind is FeatureKind.FLAG:
        adverse = derive_text(feature)
        return ReasonText(
            text_en=f"Cleared: {adverse.text_en}", text_zh=f"已解除：{adverse.text_zh}"
        )
    if feature.kind is FeatureKind.CATEGORICAL or feature.risk_direction is RiskDirection.NONE:
        adverse = derive_text(feature)
        return ReasonText(
            text_en="Favourable" + adverse.text_en.removeprefix("Unfavourable"),
            text_zh=adverse.text_zh.removesuffix("不利") + "有利",
        )
    return derive_text(_flip(feature))


@dataclass(frozen=True)
class _Factor:
    name: str
    group: FeatureGroup
    code: str | None
    adverse: ReasonText
    favourable: ReasonText


def _factors(spec: FeatureSpec, reasons: ReasonDictionary) -> tuple[list[_Factor], np.ndarray]:
    """Named factors (protected features merged, never named) and the feature->factor map."""
    factors: list[_Factor] = []
    mapping = np.zeros((len(spec.features), 0))
    columns = []
    protected = [j for j, f in enumerate(spec.features) if f.protected]
    for j, feature in enumerate(spec.features):
        if feature.protected:
            continue
        entry = reasons.entry(feature.name)
        adverse = (
            ReasonText(text_en=entry.text_en, text_zh=entry.text_zh)
            if entry is not None
            else derive_text(feature)
        )
        factors.append(
            _Factor(
                feature.name,
                feature.group,
                entry.code if entry else None,
                adverse,
                improvement_text(feature),
            )
        )
        column = np.zeros(len(spec.features))
        column[j] = 1.0
        columns.append(column)
    if protected:
        text = ReasonText(text_en="Protected attributes", text_zh="受保护属性")
        factors.append(_Factor(PROTECTED_FACTOR, FeatureGroup.PROFILE, None, text, text))
        column = np.zeros(len(spec.features))
        column[protected] = 1.0
        columns.append(column)
    mapping = np.column_stack(columns) if columns else mapping
    return factors, mapping


def _codes(value: object) -> set[str]:
    return {c for c in str(value or "").split(";") if c}


def explain_moves(
    previous: StoredRun,
    current: StoredRun,
    spec: FeatureSpec,
    reasons: ReasonDictionary,
    *,
    top: int = 3,
    lang: str = "en",
) -> pd.DataFrame:
    """One row per customer whose (tier, grade) changed, explained by the SHAP difference.

    Both runs' contributions are projected onto ``spec`` (the current model's features;
    a feature the other model lacked counts as 0).

    Args:
        previous: the earlier run.
        current: the later run.
        spec: feature spec of the current model (names, groups, protected features).
        reasons: reason dictionary of the current model (codes and texts).
        top: factors named per move.
        lang: ``en`` or ``zh`` for the explanation text.

    Returns:
        Columns `MOVE_COLUMNS`; ``factors`` is a list of dicts (feature, code, group, text_en,
        text_zh, delta); ``explanation`` joins the factor texts with their log-odds deltas;
        ``main_group`` is the feature group whose change moved the customer most.
    """
    prev = previous.ratings.set_index("customer_id")
    curr = current.ratings.set_index("customer_id")
    common = prev.index.intersection(curr.index)
    prev_pos = prev.index.get_indexer(common)
    curr_pos = curr.index.get_indexer(common)
    names = spec.names
    c_prev = project(previous.contributions, previous.info.feature_names, names)[prev_pos]
    c_curr = project(current.contributions, current.info.feature_names, names)[curr_pos]
    p, c = prev.iloc[prev_pos], curr.iloc[curr_pos]
    key_prev = p["tier_rank"].to_numpy() * 1000 + p["grade_index"].to_numpy()
    key_curr = c["tier_rank"].to_numpy() * 1000 + c["grade_index"].to_numpy()
    sign = np.sign(key_curr - key_prev).astype(np.int64)
    moved = np.flatnonzero(sign != 0)
    if len(moved) == 0:
        return pd.DataFrame(columns=MOVE_COLUMNS)

    factors, mapping = _factors(spec, reasons)
    delta = (c_curr - c_prev)[moved]
    factor_delta = delta @ mapping
    directional = factor_delta * sign[moved, None]
    k = min(top, directional.shape[1])
    order = np.argsort(-directional, axis=1, kind="stable")[:, :k]
    groups = list(FeatureGroup)
    membership = np.array(
        [[f.group == g for g in groups] for f in spec.features], dtype=np.float64
    ).reshape(len(spec.features), len(groups))
    group_delta = delta @ membership
    main_group = np.argmax(group_delta * sign[moved, None], axis=1)

    text_key = "text_zh" if lang == "zh" else "text_en"
    factor_lists, explanations = [], []
    for row in range(len(moved)):
        picked = []
        downgrade = sign[moved[row]] > 0
        for j in order[row]:
            if directional[row, j] <= 0.0:
                break
            factor = factors[j]
            text = factor.adverse if downgrade else factor.favourable
            picked.append(
                {
                    "feature": factor.name,
                    "code": factor.code,
                    "group": factor.group.value,
                    "text_en": text.text_en,
                    "text_zh": text.text_zh,
                    "delta": float(factor_delta[row, j]),
                }
            )
        factor_lists.append(picked)
        explanations.append("; ".join(f"{f[text_key]} ({f['delta']:+.2f})" for f in picked))

    pm, cm = p.iloc[moved], c.iloc[moved]
    added = [
        ";".join(sorted(_codes(b) - _codes(a)))
        for a, b in zip(pm["hard_rules"], cm["hard_rules"], strict=True)
    ]
    removed = [
        ";".join(sorted(_codes(a) - _codes(b)))
        for a, b in zip(pm["hard_rules"], cm["hard_rules"], strict=True)
    ]
    table = pd.DataFrame(
        {
            "customer_id": common[moved].to_numpy(),
            "industry": cm["industry"].to_numpy(),
            "direction": np.where(sign[moved] > 0, "downgrade", "upgrade"),
            "previous_grade": pm["grade"].to_numpy(),
            "current_grade": cm["grade"].to_numpy(),
            "grade_notches": cm["grade_index"].to_numpy() - pm["grade_index"].to_numpy(),
            "previous_tier": pm["tier"].to_numpy(),
            "current_tier": cm["tier"].to_numpy(),
            "tier_changed": pm["tier"].to_numpy() != cm["tier"].to_numpy(),
            "previous_pd": pm["pd"].to_numpy(),
            "current_pd": cm["pd"].to_numpy(),
            "delta_log_odds": cm["log_odds"].to_numpy() - pm["log_odds"].to_numpy(),
            "base_delta": cm["base"].to_numpy() - pm["base"].to_numpy(),
            "main_group": [groups[g].value for g in main_group],
            **{f"delta_{g.value}": group_delta[:, i] for i, g in enumerate(groups)},
            "new_default": cm["in_default"].to_numpy() & ~pm["in_default"].to_numpy(),
            "hard_rules_added": added,
            "hard_rules_removed": removed,
            "explanation": explanations,
            "factors": factor_lists,
        },
        columns=MOVE_COLUMNS,
    )
    severity = table["grade_notches"].abs() + 100 * table["tier_changed"]
    return (
        table.assign(_s=severity)
        .sort_values(["direction", "_s", "customer_id"], ascending=[True, False, True])
        .drop(columns="_s")
        .reset_index(drop=True)
    )


def _hits(codes: str, policy: RatingPolicy) -> list[HardRuleHit]:
    wanted = _codes(codes)
    return [
        HardRuleHit(code=r.code, flag=r.flag, text_en=r.text_en, text_zh=r.text_zh)
        for r in policy.hard_rules
        if r.code in wanted
    ]


def explain_customer(
    previous: StoredRun,
    current: StoredRun,
    customer_id: str,
    spec: FeatureSpec,
    scale: MasterScale,
    policy: RatingPolicy,
) -> Migration:
    """The full `rating.explain.explain_migration` of one customer between two runs.

    Raises:
        MonitoringError: if the customer is not in both runs.
    """
    rows = []
    for run in (previous, current):
        ids = run.ratings["customer_id"]
        found = np.flatnonzero(ids.to_numpy() == customer_id)
        if len(found) == 0:
            raise MonitoringError(f"customer {customer_id!r} is not in run {run.run_id}")
        rows.append(int(found[0]))
    contribs = [
        project(run.contributions[[i]], run.info.feature_names, spec.names)[0]
        for run, i in zip((previous, current), rows, strict=True)
    ]
    bases = [
        float(run.ratings["base"].iloc[i]) for run, i in zip((previous, current), rows, strict=True)
    ]
    rules = [
        _hits(str(run.ratings["hard_rules"].iloc[i]), policy)
        for run, i in zip((previous, current), rows, strict=True)
    ]
    return explain_migration(
        contribs[0],
        contribs[1],
        spec,
        scale,
        policy,
        previous_base=bases[0],
        current_base=bases[1],
        previous_hard_rules=rules[0],
        current_hard_rules=rules[1],
    )
