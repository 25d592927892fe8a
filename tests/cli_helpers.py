"""Run the ``riskgrade`` console entry point in process, as a user's shell would."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path


def run_main(*args: str) -> tuple[int, str, str]:
    """``riskgrade ARGS`` through ``riskgrade.cli.main``: exit code, stdout, stderr.

    Unlike ``CliRunner.invoke(app)``, this goes through the entry point's error handling, so a
    user-fixable error shows as the user sees it. An uncaught exception (a bug) propagates.
    """
    from riskgrade.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["riskgrade", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def write_incompatible_bundle(target: Path) -> Path:
    """A valid, verified bundle whose model needs a feature the feature code lacks ('noise').

    What ``riskgrade train --table`` used to leave as the portfolio champion.
    """
    import lightgbm as lgb
    import numpy as np

    from features.catalog import FEATURE_SPEC
    from features.spec import FeatureDef, FeatureGroup, FeatureSpec, RiskDirection
    from rating.bundle import write_bundle
    from rating.calibration import PlattCalibration
    from rating.policy import RatingPolicy
    from rating.scale import MasterScale

    noise = FeatureDef(
        name="noise",
        group=FeatureGroup.PROFILE,
        description="noise",
        description_zh="noise",
        unit="value",
        risk_direction=RiskDirection.NONE,
    )
    spec = FeatureSpec(version="own-1", features=(FEATURE_SPEC.by_name("debt_ratio"), noise))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] + rng.normal(size=200) > 0).astype(float)
    params = {"objective": "binary", "verbose": -1, "seed": 0, "deterministic": True}
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=spec.names), num_boost_round=5)
    write_bundle(
        target,
        model_text=booster.model_to_string(),
        calibration=PlattCalibration(a=1.0, b=0.0),
        scale=MasterScale(),
        policy=RatingPolicy(),
        spec=spec,
        reference={"note": "own table"},
        metadata={"version": "own-1", "trained_at": "2025-01-01T00:00:00+00:00"},
        overwrite=True,
    )
    return target
