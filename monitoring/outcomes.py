"""Back-testing past runs once their outcomes are known.

For every stored run at least ``horizon_months`` old, the customers performing at its date
are followed for ``horizon_months``: a default in ``(as_of, as_of + horizon]`` counts. Per grade,
the realised default rate is tested against the grade's PD band with two one-sided binomial
tests (too many defaults for the band's upper end, too few for its lower end); per run, the
AUC of the PD shows how discrimination holds up over time.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from scipy.stats import binom

from features.metrics import auc
from monitoring.config import OutcomeConfig
from rating.scale import MasterScale

GRADE_OUTCOME_COLUMNS = [
    "run_id",
    "as_of",
    "grade",
    "customers",
    "defaults",
    "default_rate",
    "mean_pd",
    "band_lower",
    "band_upper",
    "p_above_band",
    "p_below_band",
    "status",
]
AUC_COLUMNS = ["run_id", "as_of", "customers", "defaults", "default_rate", "mean_pd", "auc"]


def realised_defaults(
    customer_ids: pd.Series, as_of: date, defaults: pd.DataFrame, horizon_months: int
) -> np.ndarray:
    """Per customer, whether a default falls in ``(as_of, as_of + horizon_months]``."""
    start = pd.Timestamp(as_of)
    end = start + pd.DateOffset(months=horizon_months)
    dates = pd.to_datetime(defaults["default_date"])
    hit = set(defaults.loc[(dates > start) & (dates <= end), "customer_id"].astype(str))
    return customer_ids.astype(str).isin(hit).to_numpy()


def is_due(run_as_of: date, as_of: date, horizon_months: int) -> bool:
    """Whether a run's outcome window has closed by ``as_of``."""
    return pd.Timestamp(run_as_of) + pd.DateOffset(months=horizon_months) <= pd.Timestamp(as_of)


def grade_outcomes(
    ratings: pd.DataFrame,
    run_id: str,
    run_as_of: date,
    defaults: pd.DataFrame,
    scale: MasterScale,
    config: OutcomeConfig | None = None,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Realised default rate per grade against its PD band, and the run's AUC.

    Args:
        ratings: the run's ratings (``customer_id``, ``grade``, ``pd``, ``in_default``).
        run_id: the run's id.
        run_as_of: the run's rating date.
        defaults: the raw ``defaults`` table (``customer_id``, ``default_date``).
        scale: the master scale (PD bands).
        config: horizon and test level.

    Returns:
        The per-grade table (`GRADE_OUTCOME_COLUMNS`; ``status`` is ``above band``, ``below
        band`` or ``within band``) and one `AUC_COLUMNS` record.
    """
    config = config or OutcomeConfig()
    performing = ratings.loc[~ratings["in_default"].astype(bool)]
    y = realised_defaults(performing["customer_id"], run_as_of, defaults, config.horizon_months)
    pd_ = performing["pd"].to_numpy(dtype=np.float64)
    rows = []
    grades = performing["grade"].astype(str).to_numpy()
    for grade in scale.grades:
        members = grades == grade.name
        n = int(members.sum())
        k = int(y[members].sum())
        if n == 0:
            continue
        # P(X >= k | upper end): too many defaults even for the band's worst PD.
        p_above = float(binom.sf(k - 1, n, grade.upper)) if grade.upper < 1.0 else 1.0
        # P(X <= k | lower end): too few defaults even for the band's best PD.
        p_below = float(binom.cdf(k, n, grade.lower))
        status = (
            "above band"
            if p_above < config.alpha
            else "below band"
            if p_below < config.alpha
            else "within band"
        )
        rows.append(
            {
                "run_id": run_id,
                "as_of": pd.Timestamp(run_as_of),
                "grade": grade.name,
                "customers": n,
                "defaults": k,
                "default_rate": k / n,
                "mean_pd": float(pd_[members].mean()),
                "band_lower": grade.lower,
                "band_upper": grade.upper,
                "p_above_band": p_above,
                "p_below_band": p_below,
                "status": status,
            }
        )
    record = {
        "run_id": run_id,
        "as_of": pd.Timestamp(run_as_of),
        "customers": len(performing),
        "defaults": int(y.sum()),
        "default_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_pd": float(pd_.mean()) if len(pd_) else float("nan"),
        "auc": auc(y, pd_),
    }
    return pd.DataFrame(rows, columns=GRADE_OUTCOME_COLUMNS), record
