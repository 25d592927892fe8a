"""Training entry points: ``train_dataset`` (feature dataset) and ``train_table`` (own table).

Every run writes into ``out_dir``: ``bundle/`` (the rating bundle), ``metrics.json`` (flat dotted
keys), ``report.html`` (validation report), ``plots/*.png``, ``grades.csv`` (test window) and
``cycle_grades.csv`` (every window); and, unless the registry is disabled, logs the run to MLflow
and registers the bundle as a pyfunc model version with the ``challenger`` alias.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress
from sklearn.model_selection import StratifiedKFold

from features.build import content_hash, read_dataset
from features.metrics import auc
from features.spec import FeatureSpec
from rating.bundle import attach_validation_report, write_bundle
from rating.champion import BUNDLE_HASH_TAG
from rating.policy import RatingPolicy
from rating.scale import MasterScale
from training import plots
from training.backtest import label_overlap
from training.challenger import fit_scorecard
from training.config import TrainConfig
from training.errors import TargetError, TrainingError
from training.evaluate import SHAP_ROWS, Evaluation, fit_and_evaluate, shap_sample
from training.family import (
    FamilyChoice,
    choose_family,
    describe_family,
    fit_family_fixed,
    fit_model,
)
from training.gates import GateResult
from training.reference import reference_distributions
from training.registry import LABEL_COLUMN, environment_tags, log_run
from training.report import SHAP_DEPENDENCE_PREFIX, render_report
from training.split import Split, out_of_time_split, random_split
from training.table import (
    fairness_metrics,
    fairness_table,
    map_target,
    read_table,
    table_matrix,
    table_spec,
)

Metrics = dict[str, float | bool | str]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    metrics: Metrics
    gates: list[GateResult]
    out_dir: Path
    bundle_dir: Path
    bundle_sha256: str
    model_version: str
    run_id: str | None
    grades: pd.DataFrame
    fairness: pd.DataFrame | None = None
    cycle_grades: pd.DataFrame | None = None
    """Per grade over every window: the through-the-cycle Jeffreys test of ``max_red_grades``."""
    evaluation_frame: pd.DataFrame | None = None
    """Label, PDs, window and period of every row (``training.backtest.evaluation_frame``)."""

    @property
    def passed(self) -> bool:
        """True when every gate passed."""
        return all(g.passed for g in self.gates)


@dataclass(frozen=True)
class _Data:
    frame: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    spec: FeatureSpec
    split: Split
    source: str
    digest: str
    name: str


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(transient=True) as progress:
        yield progress


def _frame_digest(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(map(str, frame.columns)).encode()).hexdigest()


def _window_metrics(y: np.ndarray, split: Split) -> Metrics:
    out: Metrics = {"data.split": split.kind}
    for name in ("train", "calibration", "test"):
        rows = getattr(split, name)
        out[f"data.{name}.rows"] = float(len(rows))
        out[f"data.{name}.default_rate"] = float(np.mean(y[rows]))
        out[f"data.{name}.window"] = split.windows[name]
    return out


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(metrics: Metrics) -> dict[str, object]:
    """NaN / inf become null so metrics.json stays valid JSON."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in sorted(metrics.items())
    }


def _write_metrics(path: Path, metrics: Metrics) -> None:
    path.write_text(json.dumps(_clean(metrics), indent=2, default=_json_default) + "\n")


SHAP_DEPENDENCE_TOP = 3
"""Features with a SHAP dependence plot in the validation report (by mean absolute SHAP)."""


def _shap_plots(evaluation: Evaluation, x_test: np.ndarray) -> dict[str, bytes]:
    """SHAP plots (shap package) of the test rows, in calibrated log-odds."""
    contribs = shap_sample(evaluation, x_test)
    explanation = plots.shap_explanation(
        contribs, x_test[: len(contribs)], evaluation.spec.names, evaluation.calibration
    )
    riskiest = int(np.argmax(contribs.sum(axis=1)))
    images = {
        "shap_waterfall": plots.shap_waterfall_plot(explanation, riskiest),
        "shap": plots.shap_beeswarm_plot(explanation),
    }
    for name in plots.top_features(explanation, SHAP_DEPENDENCE_TOP):
        images[f"{SHAP_DEPENDENCE_PREFIX}{name}"] = plots.shap_dependence_plot(explanation, name)
    return images


def _plots(evaluation: Evaluation, x_test: np.ndarray) -> dict[str, bytes]:
    y, pd_test = evaluation.y_test, evaluation.pd_test
    return {
        "roc": plots.roc_plot(y, {"model": pd_test, "challenger": evaluation.challenger_pd_test}),
        "ks": plots.ks_plot(y, pd_test),
        "calibration": plots.calibration_plot(
            y, {"Platt": pd_test, "isotonic": evaluation.isotonic_pd_test}
        ),
        "grades": plots.grade_plot(evaluation.grades),
        "cycle": plots.cycle_plot(evaluation.backtest.cycle),
        "cycle_grades": plots.grade_plot(
            evaluation.backtest.cycle_grades, "Default rate by grade (all windows)"
        ),
        **_shap_plots(evaluation, x_test),
        "importance": plots.importance_plot(evaluation.importance),
    }


def _finish(
    data: _Data,
    evaluation: Evaluation,
    config: TrainConfig,
    scale: MasterScale,
    policy: RatingPolicy,
    out_dir: Path,
    tracking_uri: str | None,
    extra_metrics: Metrics,
    fairness: pd.DataFrame | None,
    limitations: list[str],
) -> TrainResult:
    spec, split, x = data.spec, data.split, data.x
    metrics: Metrics = {**evaluation.metrics, **extra_metrics}
    metrics.update(_window_metrics(data.y, split))
    metrics["data.digest"] = data.digest
    model_text = evaluation.model.model_text
    version_label = (
        f"{config.model_version_prefix}-{hashlib.sha256(model_text.encode()).hexdigest()[:12]}"
    )
    reference = reference_distributions(
        x[split.train], evaluation.pd_train, spec, scale, config.validation.reference_bins
    )
    numeric = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and math.isfinite(float(v))
    }
    lineage = {"data_digest": data.digest, "data_source": data.source, "git_commit": "see MLflow"}
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = write_bundle(
        out_dir / "bundle",
        model_text=model_text,
        calibration=evaluation.calibration,
        scale=scale,
        policy=policy,
        spec=spec,
        reference=reference,
        metadata={
            "version": version_label,
            "trained_at": datetime.now(UTC),
            "model_name": config.registry.registered_model_name,
            "metrics": numeric,
            "lineage": lineage,
            "params": json.loads(json.dumps(evaluation.model.params, default=str)),
        },
        overwrite=True,
    )
    metrics["model.bundle_sha256"] = bundle.bundle_hash
    metrics["model.bundle_version"] = version_label
    metrics["model.version"] = version_label

    x_test = x[split.test]
    images = _plots(evaluation, x_test)
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    for name, png in images.items():
        (plot_dir / f"{name}.png").write_bytes(png)
    evaluation.grades.to_csv(out_dir / "grades.csv", index=False)
    evaluation.backtest.cycle_grades.to_csv(out_dir / "cycle_grades.csv", index=False)
    if fairness is not None:
        fairness.to_csv(out_dir / "fairness.csv", index=False)
    report = render_report(
        title=f"riskgrade validation report — {version_label}",
        data={
            "source": data.source,
            "digest": data.digest,
            "rows": len(data.y),
            "features": len(spec.features),
            **{k: v for k, v in metrics.items() if k.startswith("data.")},
        },
        method={
            "model": describe_family(
                str(metrics.get("model.family", "lgbm")),
                float(metrics.get("model.blend_weight", 1.0)),
            ),
            "trees (best iteration)": evaluation.model.best_iteration,
            "calibration": (
                f"Platt a={evaluation.calibration.a:.4f} b={evaluation.calibration.b:.4f}"
            ),
            "anchored to long-run default rate": evaluation.long_run_rate,
            "challenger": f"logistic regression on WOE bins ({config.challenger.binning} binning)",
            "split": split.kind,
        },
        metrics=metrics,
        grades=evaluation.grades,
        challenger_grades=evaluation.challenger_grades,
        gates=evaluation.gates,
        backtest=evaluation.backtest,
        plots=images,
        limitations=limitations,
        fairness=fairness,
        shap_rows=min(len(x_test), SHAP_ROWS),
    )
    (out_dir / "report.html").write_text(report, encoding="utf-8")
    bundle = attach_validation_report(bundle.path, report)  # the report travels with the model
    metrics["model.bundle_sha256"] = bundle.bundle_hash
    _write_metrics(out_dir / "metrics.json", metrics)

    run_id = None
    if config.registry.enabled:
        test_set = pd.DataFrame(x_test, columns=spec.names)
        test_set[LABEL_COLUMN] = evaluation.y_test.astype(np.int64)
        params = {f"lgbm.{k}": v for k, v in evaluation.model.params.items()}
        params.update({"seed": config.seed, "split.kind": split.kind, "spec.version": spec.version})
        params.update({f"calibration.{k}": v for k, v in config.calibration.model_dump().items()})
        params.update({f"challenger.{k}": v for k, v in config.challenger.model_dump().items()})
        params.update({f"family.{k}": v for k, v in config.family.model_dump().items()})
        params.update({k: v for k, v in metrics.items() if k.startswith("model.family")})
        tags = {
            **environment_tags(),
            "dvc.data_hash": data.digest,
            BUNDLE_HASH_TAG: bundle.bundle_hash,
        }
        with tempfile.TemporaryDirectory() as tmp:
            artifacts = Path(tmp)
            for name, png in images.items():
                (artifacts / f"{name}.png").write_bytes(png)
            (artifacts / "report.html").write_text(report, encoding="utf-8")
            evaluation.grades.to_csv(artifacts / "grades.csv", index=False)
            _write_metrics(artifacts / "metrics.json", metrics)
            logged = log_run(
                config=config,
                tracking_uri=tracking_uri,
                params=params,
                metrics=metrics,
                tags=tags,
                dataset=data.frame,
                dataset_source=data.source,
                dataset_digest=data.digest,
                dataset_name=data.name,
                target=config.target,
                test_set=test_set,
                artifacts_dir=artifacts,
                bundle_dir=bundle.path,
                input_example=test_set[spec.names].head(5),
            )
        run_id = logged.run_id
        if logged.registered_version is not None:
            metrics["model.version"] = logged.registered_version
        metrics["mlflow.run_id"] = run_id
        metrics["mlflow.registered_model"] = config.registry.registered_model_name
        _write_metrics(out_dir / "metrics.json", metrics)
    return TrainResult(
        metrics=metrics,
        gates=evaluation.gates,
        out_dir=out_dir,
        bundle_dir=bundle.path,
        bundle_sha256=bundle.bundle_hash,
        model_version=str(metrics["model.version"]),
        run_id=run_id,
        grades=evaluation.grades,
        fairness=fairness,
        cycle_grades=evaluation.backtest.cycle_grades,
        evaluation_frame=evaluation.frame,
    )


def _load_dataset(source: Path | str | pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """Frame, source description and content digest (the dataset card's hash when present)."""
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True), "in-memory frame", _frame_digest(source)
    path = Path(source)
    parquet = path / "dataset.parquet" if path.is_dir() else path
    if not parquet.is_file():
        if path.is_dir() and any(path.glob("snapshot_date=*/*.parquet")):
            # A partitioned training set written by ``features build --engine spark``.
            frame = read_dataset(path)
            return frame, str(path), content_hash(frame)
        raise TrainingError(f"no dataset at {parquet} (expected a dataset folder or parquet file)")
    frame = pd.read_parquet(parquet)
    card = parquet.parent / "card.json"
    digest = None
    if card.is_file():
        content = json.loads(card.read_text())
        digest = content.get("content_sha256") or content.get("content_hash")
    digest = digest or hashlib.sha256(parquet.read_bytes()).hexdigest()
    return frame, str(parquet), str(digest)


def _oracle_auc(
    frame: pd.DataFrame, y: np.ndarray, rows: np.ndarray, truth_dir: Path, config: TrainConfig
) -> Metrics:
    path = truth_dir / "true_pd.parquet"
    if not path.is_file():
        path = truth_dir / "_truth" / "true_pd.parquet"
    if not path.is_file():
        raise TrainingError(f"no true_pd.parquet in {truth_dir} or {truth_dir / '_truth'}")
    truth = pd.read_parquet(path, columns=["customer_id", "month", "true_pd_12m"])
    truth["month"] = pd.to_datetime(truth["month"]).dt.to_period("M")
    test = pd.DataFrame(
        {
            "customer_id": frame[config.id_col].to_numpy()[rows],
            "month": pd.to_datetime(frame[config.time_col].to_numpy()[rows]).to_period("M"),
            "y": y[rows],
        }
    )
    joined = test.merge(truth, on=["customer_id", "month"], how="left")
    found = joined["true_pd_12m"].notna().to_numpy()
    return {
        "oracle.test.auc": auc(
            joined["y"].to_numpy()[found].astype(float), joined["true_pd_12m"].to_numpy()[found]
        ),
        "oracle.test.coverage": float(found.mean()),
    }


def _defaults(
    scale: MasterScale | None, policy: RatingPolicy | None
) -> tuple[MasterScale, RatingPolicy]:
    return scale or MasterScale(), policy or RatingPolicy()


def fit_family_evaluated(
    x: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    split: Split,
    config: TrainConfig,
    scale: MasterScale,
    *,
    groups: np.ndarray | None = None,
    periods: pd.Series | None = None,
    overlap: float = 1.0,
) -> tuple[FamilyChoice, Evaluation]:
    """Choose and fit the model family, then validate it; drop a family that fails a gate.

    Under ``family.choice: auto`` a chosen family whose validation fails one of
    ``family.drop_on_gates`` is left out and the next one by the same rule (from the same
    cross-validation, not re-run) is built and validated, until one passes them;
    ``model.family_dropped`` records the families left out. When none passes, the first
    choice stays, with its failed gates (a worse model failing the same gate is no gain).
    """
    model, family = fit_model(x, y, spec, split, config, groups=groups)
    first: tuple[FamilyChoice, Evaluation] | None = None
    while True:
        with _progress(config.show_progress) as progress:
            evaluation = fit_and_evaluate(
                x,
                y,
                spec,
                split,
                config,
                scale,
                progress,
                periods=periods,
                overlap=overlap,
                model=model,
            )
        failed = [
            g.name
            for g in evaluation.gates
            if not g.passed and g.name in config.family.drop_on_gates
        ]
        if not failed:
            return family, evaluation
        first = first or (family, evaluation)
        following = family.without(family.family, config.family.se_multiplier)
        if following is None:
            return first
        model, family = fit_model(x, y, spec, split, config, groups=groups, choice=following)


def train_dataset(
    dataset: Path | str | pd.DataFrame,
    config: TrainConfig | None = None,
    out_dir: Path | str = "reports",
    truth_dir: Path | str | None = None,
    tracking_uri: str | None = None,
    *,
    spec: FeatureSpec | None = None,
    scale: MasterScale | None = None,
    policy: RatingPolicy | None = None,
) -> TrainResult:
    """Train, calibrate, validate and register a model on the features dataset (out of time).

    Args:
        dataset: dataset folder (``dataset.parquet`` + ``card.json``), a parquet file or a frame
            with ``customer_id``, ``snapshot_date``, the spec's features and ``default_12m``.
        config: training configuration (defaults when omitted).
        out_dir: output folder (bundle, metrics.json, report, plots).
        truth_dir: generator output folder (or its ``_truth``) for the oracle AUC.
        tracking_uri: MLflow tracking URI (else ``MLFLOW_TRACKING_URI``, else the config's).
        spec: feature spec (default ``features.catalog.FEATURE_SPEC``); protected features are
            left out of the model.
        scale: master scale (default ``MasterScale()``).
        policy: rating policy (default ``RatingPolicy()``).

    Raises:
        TrainingError: on missing columns, unusable labels or an impossible split.
    """
    config = config or TrainConfig()
    scale, policy = _defaults(scale, policy)
    if spec is None:
        from features.catalog import FEATURE_SPEC

        spec = FEATURE_SPEC
    frame, source, digest = _load_dataset(dataset)
    model_spec = spec.select([f.name for f in spec.features if not f.protected])
    needed = [config.id_col, config.time_col, config.target, *model_spec.names]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise TrainingError(f"dataset lacks column(s) {missing}")
    labels = frame[config.target]
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise TargetError(f"target '{config.target}' must be 0/1 without missing values")
    y = labels.to_numpy(dtype=np.int64)
    split = out_of_time_split(frame[config.time_col], config.split)
    x = np.ascontiguousarray(frame[model_spec.names].to_numpy(dtype=np.float64, na_value=np.nan))
    data = _Data(frame, x, y, model_spec, split, source, digest, "features_dataset")
    family, evaluation = fit_family_evaluated(
        x,
        y,
        model_spec,
        split,
        config,
        scale,
        groups=frame[config.id_col].to_numpy(),
        periods=frame[config.time_col],
        overlap=label_overlap(frame[config.time_col]),
    )
    extra: Metrics = {"data.target": config.target, **family.metrics()}
    if truth_dir is not None:
        extra.update(_oracle_auc(frame, y, split.test, Path(truth_dir), config))
    limitations = [
        "Sample portfolio data are synthetic; performance on real portfolios must be re-validated.",
        f"Out-of-time test window {split.windows['test']} covers one phase of the cycle only: "
        "discrimination is judged there, the calibration level over every window.",
        "PDs are anchored to the training window's average default rate (long-run proxy).",
        "Qualitative assessments (management, market outlook) are not modelled.",
    ]
    return _finish(
        data,
        evaluation,
        config,
        scale,
        policy,
        Path(out_dir),
        tracking_uri,
        extra,
        None,
        limitations,
    )


def cross_validate(
    x: np.ndarray, y: np.ndarray, spec: FeatureSpec, config: TrainConfig, k: int, rounds: int
) -> Metrics:
    """Stratified, seeded K-fold AUC of the whole model procedure and of the challenger.

    In every fold the model family is chosen again by cross-validation inside the fold's
    training rows (nested; LightGBM tree counts tried from ``rounds``), then fitted there;
    ``cv.families`` lists the family each fold chose.
    """
    if k < 2:
        raise TrainingError(f"cv needs at least 2 folds, got {k}")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=config.seed)
    model_auc, challenger_auc, families = [], [], []
    for train, test in folds.split(x, y):
        choice = choose_family(x[train], y[train], spec, config, rounds)
        booster = fit_family_fixed(x[train], y[train], spec, config, choice)
        margin = np.asarray(booster.predict(x[test], raw_score=True))
        model_auc.append(auc(y[test].astype(float), margin))
        families.append(choice.family)
        scorecard = fit_scorecard(x[train], y[train], spec, config.challenger, config.seed)
        challenger_auc.append(auc(y[test].astype(float), scorecard.predict_pd(x[test])))
    return {
        "cv.folds": float(k),
        "cv.rounds": float(rounds),
        "cv.families": ",".join(families),
        "cv.auc_mean": float(np.mean(model_auc)),
        "cv.auc_std": float(np.std(model_auc)),
        "cv.challenger_auc_mean": float(np.mean(challenger_auc)),
        "cv.challenger_auc_std": float(np.std(challenger_auc)),
    }


def own_model_name(model_name: str | None, file_stem: str, config: TrainConfig) -> str:
    """The registered model name of an own-table run: ``model_name``, else ``table-<file stem>``.

    Raises:
        TrainingError: if the name is empty or is the portfolio model's name.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", file_stem.lower()).strip("-") or "table"
    name = (model_name if model_name is not None else f"table-{slug}").strip()
    if not name:
        raise TrainingError("the model name must not be empty")
    portfolio = config.registry.registered_model_name
    if name == portfolio:
        raise TrainingError(
            f"model name '{name}' is the portfolio model's: a model trained on an own table "
            "needs a name of its own (riskgrade train --model-name)"
        )
    return name


def train_table(
    path: Path | str | pd.DataFrame,
    target: str,
    positive: object | None = None,
    time_col: str | None = None,
    cv: int | None = None,
    drop: Sequence[str] = (),
    protected: Sequence[str] = (),
    config: TrainConfig | None = None,
    out_dir: Path | str = "reports",
    tracking_uri: str | None = None,
    *,
    model_name: str | None = None,
    scale: MasterScale | None = None,
    policy: RatingPolicy | None = None,
) -> TrainResult:
    """Train the same model family on a user's own feature table.

    The run registers under a model name of its own, never under the portfolio model's
    (``config.registry.registered_model_name``): its features are not the ones the service
    computes, so it must not take the portfolio model's ``challenger`` alias.

    Args:
        path: CSV, Parquet or ARFF file (or a frame).
        target: target column (0/1, boolean, or strings; see ``positive``).
        positive: the target value meaning default, when not 1/true/yes/default/bad.
        time_col: optional date column: out-of-time split by it; else a stratified random split.
        cv: K for an additional stratified K-fold AUC of model and challenger on all rows.
        drop: columns to ignore (ids, leakage).
        protected: columns excluded from the model, used only for fairness metrics.
        config: training configuration (defaults when omitted).
        out_dir: output folder.
        tracking_uri: MLflow tracking URI.
        model_name: registered model name (default ``table_model_name`` of the file name).
        scale: master scale (default ``MasterScale()``).
        policy: rating policy (default ``RatingPolicy()``).

    Raises:
        TargetError: missing target column, unmappable or single-class target.
        TrainingError: unknown columns in ``drop``/``protected``, no feature left, bad file,
            or ``model_name`` naming the portfolio model.
    """
    config = config or TrainConfig()
    scale, policy = _defaults(scale, policy)
    name = own_model_name(
        model_name, "frame" if isinstance(path, pd.DataFrame) else Path(path).stem, config
    )
    if isinstance(path, pd.DataFrame):
        frame, source = path.reset_index(drop=True), "in-memory frame"
    else:
        frame, source = read_table(path), str(path)
    if target not in frame.columns:
        raise TargetError(
            f"target column '{target}' is not in the table (columns: {list(frame.columns)[:20]})"
        )
    for role, names in (
        ("drop", drop),
        ("protected", protected),
        ("time_col", [time_col] if time_col else []),
    ):
        unknown = [c for c in names if c not in frame.columns]
        if unknown:
            raise TrainingError(f"{role} column(s) {unknown} are not in the table")
    y = map_target(frame[target], positive)
    excluded = {target, *drop, *protected, *([time_col] if time_col else [])}
    columns = [c for c in frame.columns if c not in excluded]
    if not columns:
        raise TrainingError("no feature column left after removing target, drop, protected, time")
    spec = table_spec(frame, columns)
    x = table_matrix(frame, columns, spec)
    split = (
        out_of_time_split(frame[time_col], config.split)
        if time_col
        else random_split(y, config.split, config.seed)
    )
    data = _Data(frame, x, y, spec, split, source, _frame_digest(frame), Path(source).stem)
    registry = config.registry.model_copy(update={"registered_model_name": name})
    table_config = config.model_copy(update={"target": target, "registry": registry})
    family, evaluation = fit_family_evaluated(
        x, y, spec, split, table_config, scale, periods=frame[time_col] if time_col else None
    )
    extra: Metrics = {"data.target": target, **family.metrics()}
    fairness = None
    if protected:
        fairness = fairness_table(
            frame.loc[split.test, list(protected)],
            y[split.test],
            evaluation.pd_test,
            config.validation.approval_share,
        )
        extra.update(fairness_metrics(fairness))
    if cv:
        extra.update(cross_validate(x, y, spec, config, cv, family.lgbm_trees))
    limitations = [
        "Own table: risk directions unknown, so no monotone constraints were applied.",
        "Without a time column the test window is a random sample, not out of time.",
        f"Protected columns {list(protected)} were excluded from the model; other columns may "
        "still act as proxies for them.",
    ]
    return _finish(
        data,
        evaluation,
        table_config,
        scale,
        policy,
        Path(out_dir),
        tracking_uri,
        extra,
        fairness,
        limitations,
    )
