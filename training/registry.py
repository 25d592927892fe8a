"""MLflow tracking, registry and promotion.

Tracking URI precedence: explicit argument, then ``MLFLOW_TRACKING_URI``, then the config's
embedded default ``sqlite:///mlflow.db`` (artifacts land in ``./mlruns`` next to it).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.metrics import auc
from rating.bundle import load_bundle
from rating.compat import incompatible_features
from rating.model import RatingModel
from training.config import RegistryConfig, TrainConfig
from training.errors import PromotionError, TrainingError
from training.gates import GateResult, all_passed, evaluate_gates

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
TEST_SET_ARTIFACT = "validation/test_set.parquet"
METRICS_ARTIFACT = "validation/metrics.json"
LABEL_COLUMN = "_label"
"""Label column of the logged test set (cannot clash with a feature name)."""
_PACKAGES = ("lightgbm", "mlflow", "numpy", "pandas", "scikit-learn", "scipy", "riskgrade")


def resolve_tracking_uri(config: RegistryConfig, tracking_uri: str | None = None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else the configured embedded default."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or config.tracking_uri


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine a model."""
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit() -> str:
    """``git rev-parse HEAD`` of the working directory, or ``unknown``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _pip_requirements() -> list[str]:
    # Pinned explicitly: letting MLflow infer them would load the model in a subprocess.
    versions = package_versions()
    return [
        f"{n}=={versions[n]}"
        for n in ("lightgbm", "mlflow", "numpy", "pandas", "scipy", "pydantic")
        if n in versions and versions[n] != "not installed"
    ] + ["riskgrade"]


@dataclass(frozen=True)
class LoggedRun:
    """Where a training run landed in MLflow."""

    run_id: str
    model_uri: str
    registered_version: str | None


def log_run(
    *,
    config: TrainConfig,
    tracking_uri: str | None,
    params: dict[str, object],
    metrics: dict[str, float | bool | str],
    tags: dict[str, str],
    dataset: pd.DataFrame,
    dataset_source: str,
    dataset_digest: str,
    dataset_name: str,
    target: str,
    test_set: pd.DataFrame,
    artifacts_dir: Path,
    bundle_dir: Path,
    input_example: pd.DataFrame,
) -> LoggedRun:
    """Log one run: params, metrics, tags, lineage, artifacts, the bundle as pyfunc; register it.

    The registered version gets the ``challenger`` alias.

    Raises:
        TrainingError: if MLflow refuses or cannot be reached (the local outputs exist).
    """
    uri = resolve_tracking_uri(config.registry, tracking_uri)
    try:
        registry = config.registry
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        mlflow.set_experiment(registry.experiment_name)
        with mlflow.start_run() as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            numeric = {
                k: float(v)
                for k, v in metrics.items()
                if isinstance(v, bool | int | float) and np.isfinite(float(v))
            }
            mlflow.log_metrics(numeric)
            mlflow.set_tags(tags)
            source_dataset = from_pandas(
                dataset,
                source=dataset_source,
                targets=target,
                name=dataset_name,
                digest=dataset_digest[:32],
            )
            mlflow.log_input(source_dataset, context="training")
            mlflow.log_artifacts(str(artifacts_dir), artifact_path="validation")
            with tempfile.TemporaryDirectory() as tmp:
                test_path = Path(tmp) / "test_set.parquet"
                test_set.to_parquet(test_path, index=False)
                mlflow.log_artifact(str(test_path), artifact_path="validation")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_FILE),
                artifacts={"bundle": str(bundle_dir)},
                pip_requirements=_pip_requirements(),
                registered_model_name=registry.registered_model_name,
                signature=mlflow.models.infer_signature(input_example),
            )
            version_number = info.registered_model_version
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        registered = str(version_number) if version_number is not None else None
        if registered is not None:
            client.set_registered_model_alias(
                registry.registered_model_name, registry.challenger_alias, registered
            )
        return LoggedRun(
            run_id=run.info.run_id, model_uri=info.model_uri, registered_version=registered
        )

    except MlflowException as error:
        raise TrainingError(
            f"the outputs are written, but logging the run to MLflow at {uri} failed: "
            f"{error.message}"
        ) from error


def environment_tags() -> dict[str, str]:
    """Git commit, platform and package versions as MLflow tags."""
    tags = {
        "git.commit": git_commit(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    tags.update({f"pkg.{k}": v for k, v in package_versions().items()})
    return tags


@dataclass(frozen=True)
class PromotionResult:
    """Outcome of a promotion attempt."""

    promoted: bool
    challenger_version: str
    previous_champion_version: str | None
    gates: list[GateResult]
    challenger_auc: float
    champion_auc: float | None
    message: str

    @property
    def failed_gates(self) -> list[GateResult]:
        """Gates that failed (empty when promoted)."""
        return [g for g in self.gates if not g.passed]


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _bundle_model(client: MlflowClient, run_id: str | None, tmp: Path) -> RatingModel:
    if run_id is None:
        raise PromotionError("a registered version has no training run to read its bundle from")
    # log_model stores the ``bundle`` artifact under <model>/artifacts/<folder name>.
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{run_id}/model", dst_path=str(tmp / run_id)
        )
    )
    manifests = sorted(local.rglob("manifest.json"))
    if not manifests:
        raise PromotionError(f"run {run_id} has no bundle in its logged model")
    return RatingModel(load_bundle(manifests[0].parent))


def _score_auc(model: RatingModel, test_set: pd.DataFrame) -> float | None:
    names = model.spec.names
    if any(n not in test_set.columns for n in names):
        return None
    matrix = test_set[names].to_numpy(dtype=np.float64, na_value=np.nan)
    zeros = np.zeros(len(test_set))
    flags = {f: zeros for f in model.policy.flag_names if f not in names}
    pds = model.score(matrix, flags).pd
    return auc(test_set[LABEL_COLUMN].to_numpy(dtype=np.float64), pds)


def _computable_gate(model: RatingModel) -> tuple[GateResult, str]:
    """Gate: the feature code computes every feature of the model (portfolio model only)."""
    problems = incompatible_features(model.spec)
    gate = GateResult(
        name="features_computable", passed=not problems, value=float(len(problems)), threshold=0.0
    )
    note = f"features the feature code does not compute: {', '.join(problems)}" if problems else ""
    return gate, note


def promote(
    config: TrainConfig, tracking_uri: str | None = None, *, model_name: str | None = None
) -> PromotionResult:
    """Move ``champion`` to the ``challenger`` version when it passes every gate and is no worse.

    Gates are re-evaluated on the challenger run's metrics with ``config.gates``. For the
    portfolio model (``config.registry.registered_model_name``, which serving loads) the
    challenger must also need only features the current feature code computes (gate
    ``features_computable``, naming the others). The current champion (if any) is re-scored
    from its bundle on the challenger run's test rows and the challenger must reach at least
    the champion's AUC minus ``gates.champion_margin``. If the champion's features are not all
    in those rows, the comparison is skipped (said in the message) and the gates alone decide.

    Args:
        config: training configuration (gates, registry).
        tracking_uri: MLflow tracking URI (else ``MLFLOW_TRACKING_URI``, else the config's).
        model_name: registered model to promote (default: the portfolio model), e.g. a model
            trained on an own table.

    Raises:
        PromotionError: if no challenger is registered, its run lacks the validation data, or
            the registry cannot be reached.
    """
    registry = config.registry
    uri = resolve_tracking_uri(registry, tracking_uri)
    name = registry.registered_model_name if model_name is None else model_name
    try:
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        challenger = _version_by_alias(client, name, registry.challenger_alias)
    except MlflowException as error:
        raise PromotionError(f"cannot read the model registry at {uri}: {error.message}") from error
    if challenger is None:
        raise PromotionError(
            f"registered model '{name}' has no '{registry.challenger_alias}' alias"
        )
    champion = _version_by_alias(client, name, registry.champion_alias)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            metrics_path = mlflow.artifacts.download_artifacts(
                run_id=challenger.run_id, artifact_path=METRICS_ARTIFACT, dst_path=str(tmp)
            )
            test_path = mlflow.artifacts.download_artifacts(
                run_id=challenger.run_id, artifact_path=TEST_SET_ARTIFACT, dst_path=str(tmp)
            )
        except MlflowException as exc:
            raise PromotionError(
                f"challenger run {challenger.run_id} lacks its validation artifacts: {exc}"
            ) from exc
        metrics = json.loads(Path(metrics_path).read_text())
        gates = evaluate_gates(metrics, config.gates)
        test_set = pd.read_parquet(test_path)
        challenger_model = _bundle_model(client, challenger.run_id, tmp)
        if name == registry.registered_model_name:
            computable, refusal = _computable_gate(challenger_model)
            gates = [computable, *gates]
        else:
            refusal = ""
        challenger_auc = _score_auc(challenger_model, test_set)
        if challenger_auc is None:
            raise PromotionError("the challenger's own features are missing from its test set")
        champion_auc = None
        note = "no champion yet"
        if champion is not None and champion.version == challenger.version:
            note = f"version {challenger.version} is already champion"
        elif champion is not None:
            champion_auc = _score_auc(_bundle_model(client, champion.run_id, tmp), test_set)
            note = (
                f"champion v{champion.version} cannot be scored on these rows (other features); "
                "comparison skipped"
                if champion_auc is None
                else f"champion v{champion.version} AUC {champion_auc:.4f} on the same rows"
            )
    not_worse = GateResult(
        name="not_worse_than_champion",
        passed=champion_auc is None
        or challenger_auc >= champion_auc - config.gates.champion_margin,
        value=challenger_auc,
        threshold=None if champion_auc is None else champion_auc - config.gates.champion_margin,
    )
    gates = [*gates, not_worse]
    promoted = all_passed(gates)
    if promoted:
        client.set_registered_model_alias(name, registry.champion_alias, challenger.version)
        message = (
            f"promoted v{challenger.version} of '{name}' to {registry.champion_alias} ({note})"
        )
    else:
        failed = ", ".join(g.name for g in gates if not g.passed)
        message = f"v{challenger.version} of '{name}' not promoted, failed: {failed} ({note})"
        if refusal:
            message += f"; {refusal}"
    return PromotionResult(
        promoted=promoted,
        challenger_version=str(challenger.version),
        previous_champion_version=None if champion is None else str(champion.version),
        gates=gates,
        challenger_auc=challenger_auc,
        champion_auc=champion_auc,
        message=message,
    )
