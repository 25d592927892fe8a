"""On the sample portfolio, skilled judgement raises discrimination and biased judgement lowers it.

A controlled experiment of the measurement of `monitoring.judgement`: the generator's analysts
see each customer's long-run quality and current health (signal) blurred by noise; one analyst
upgrades a favoured industry whatever its health. Against a weak stand-in model (the true PD
blurred by noise, seeded), the final grade of the skilled analysts' judgement discriminates
better than the model grade, with the bootstrap interval of the gain above zero; the biased
analyst's judgement discriminates worse.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from features.judgement import JudgementTables
from features.synthetic import GeneratorConfig, generate_with_judgement
from features.synthetic_judgement import BIASED_ANALYST
from monitoring.judgement import discrimination, judge_ratings
from monitoring.outcomes import realised_defaults
from rating.config import RatingConfig

RATING = RatingConfig()
DATES = (date(2021, 6, 30), date(2022, 6, 30), date(2023, 6, 30), date(2024, 6, 30))
WEAK_MODEL_NOISE = 1.2
"""Log-odds noise of the stand-in model around the true PD."""


@pytest.mark.slow
def test_skilled_judgement_raises_auc_and_biased_judgement_lowers_it() -> None:
    # given a portfolio with its judgement, and a weak model rating it at four dates
    raw, truth, judgement = generate_with_judgement(
        GeneratorConfig(customers=3000, seed=11), RATING.generator_spec()
    )
    a, o = judgement.assessments, judgement.overrides
    skilled = JudgementTables(a[a["analyst"] != BIASED_ANALYST], o[o["proposer"] != BIASED_ANALYST])
    biased = JudgementTables(a[a["analyst"] == BIASED_ANALYST], o[o["proposer"] == BIASED_ANALYST])
    rng = np.random.default_rng(0)
    pooled: dict[str, list[pd.DataFrame]] = {"skilled": [], "biased": []}
    for as_of in DATES:
        month = truth[truth["month"] == pd.Timestamp(as_of.replace(day=1))]
        model_pd = expit(
            logit(month["true_pd_12m"].to_numpy()) + rng.normal(0, WEAK_MODEL_NOISE, len(month))
        )
        ratings = pd.DataFrame(
            {
                "customer_id": month["customer_id"].to_numpy(),
                "pd": model_pd,
                "grade": RATING.scale.grade_of(model_pd),
                "in_default": False,
                "hard_rules": "",
            }
        )
        # when each set of judgement is applied through the rating chain
        for name, tables in (("skilled", skilled), ("biased", biased)):
            judged = judge_ratings(
                ratings, tables, as_of, RATING.scale, RATING.policy, RATING.judgement
            )
            judged["defaulted"] = realised_defaults(judged["customer_id"], as_of, raw.defaults, 12)
            pooled[name].append(judged)
    index = {name: i for i, name in enumerate(RATING.scale.names)}
    gains = {}
    for name, parts in pooled.items():
        frame = pd.concat(parts, ignore_index=True)
        table = discrimination(
            frame["defaulted"].to_numpy(),
            frame["model_grade"].map(index).to_numpy(),
            frame["final_grade"].map(index).to_numpy(),
        )
        gains[name] = table.set_index("grade").loc["difference"]
        pooled[name] = [frame]
    # then skilled judgement raises the AUC, the interval of the gain above zero
    assert gains["skilled"]["ci_low"] > 0, gains["skilled"]
    # and biased judgement lowers it
    assert gains["biased"]["auc"] < 0 < gains["skilled"]["auc"], gains["biased"]
    # and the biased analyst's upgrades default far more often than their final PD says
    up = pooled["biased"][0]
    up = up[up["direction"] == "up"]
    assert len(up) > 30
    assert up["defaulted"].mean() > 2 * up["final_pd"].mean()
