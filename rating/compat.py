"""Can the current feature code compute what a model needs?

A bundle records the feature spec it was trained on. Serving, batch scoring, monitoring and
promotion of the portfolio model compute those features with ``features.catalog``: a bundle
naming a feature the catalog lacks (a model trained on someone's own table, or on an older
catalog), or encoding a categorical feature with other levels, cannot be rated by this code.
"""

from __future__ import annotations

from features.catalog import FEATURE_SPEC
from features.errors import RiskgradeError
from features.spec import FeatureKind, FeatureSpec


class ModelIncompatibleError(RiskgradeError, RuntimeError):
    """The bundle's feature spec asks for features the feature code does not compute."""


def incompatible_features(spec: FeatureSpec, catalog: FeatureSpec = FEATURE_SPEC) -> list[str]:
    """The features of ``spec`` that ``catalog`` cannot supply, each with the reason.

    A feature is incompatible when the catalog has no feature of that name, or when it is
    categorical in both specs with different levels (its integer codes would mean other things).

    Returns:
        ``"name (reason)"`` strings in spec order; empty when every feature can be computed.
    """
    known = {feature.name: feature for feature in catalog.features}
    problems = []
    for feature in spec.features:
        computed = known.get(feature.name)
        if computed is None:
            problems.append(f"{feature.name} (not computed)")
        elif (
            feature.kind is FeatureKind.CATEGORICAL
            and computed.kind is FeatureKind.CATEGORICAL
            and feature.categories != computed.categories
        ):
            problems.append(f"{feature.name} (other categories)")
    return problems


def check_compatible(spec: FeatureSpec, label: str) -> None:
    """Refuse a model whose features the current feature code cannot compute.

    Args:
        spec: the model's feature spec (from its bundle).
        label: how to name the model in the message (e.g. ``bundle 1a2b3c4d5e6f``).

    Raises:
        ModelIncompatibleError: naming every feature at fault.
    """
    problems = incompatible_features(spec)
    if problems:
        raise ModelIncompatibleError(
            f"{label} needs features the feature code does not compute: {', '.join(problems)}"
        )
