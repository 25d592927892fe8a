"""Resolve the MLflow ``champion`` alias to a verified bundle folder on local disk."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from features.errors import RiskgradeError
from rating.bundle import load_bundle
from rating.compat import check_compatible

BUNDLE_HASH_TAG = "bundle.sha256"
"""Run tag under which training records the bundle hash."""


class ChampionError(RiskgradeError, RuntimeError):
    """The registry has no usable champion."""


@dataclass(frozen=True)
class Champion:
    """A champion bundle copied out of the registry."""

    version: str
    bundle_dir: Path
    bundle_hash: str


def fetch_champion(
    tracking_uri: str, model_name: str, dest: Path, alias: str = "champion"
) -> Champion:
    """Download the bundle of ``model_name@alias`` into ``dest`` and verify its manifest.

    ``dest`` is replaced only once the new bundle is downloaded and verified.

    Raises:
        ChampionError: if the alias is not set or its run holds no bundle.
        rating.bundle.BundleIntegrityError: if a file does not match the manifest, or the
            manifest does not match the hash recorded on the training run.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        # The registry lives in the same store: never fall back to a process-wide registry URI.
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except MlflowException as error:
        message = f"cannot open the model registry at {tracking_uri}: {error.message}"
        raise ChampionError(message) from error
    try:
        version = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            message = f"cannot read the model registry at {tracking_uri}: {error.message}"
            raise ChampionError(message) from error
        raise ChampionError(
            f"no '{alias}' alias on registered model '{model_name}' at {tracking_uri}: "
            "train and promote a model first (riskgrade train; riskgrade promote)"
        ) from error
    if version.run_id is None:
        raise ChampionError(f"version {version.version} of '{model_name}' has no training run")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        mlflow.set_tracking_uri(tracking_uri)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"runs:/{version.run_id}/model", dst_path=tmp
            )
        )
        manifests = sorted(local.rglob("manifest.json"))
        if not manifests:
            raise ChampionError(f"run {version.run_id} of version {version.version} has no bundle")
        # Pin the download to the hash the training run recorded in the registry, so a
        # bundle whose files and manifest were both replaced is refused too.
        recorded = client.get_run(version.run_id).data.tags.get(BUNDLE_HASH_TAG)
        bundle = load_bundle(manifests[0].parent, expected_hash=recorded)
        staging = Path(tmp) / "verified"
        shutil.copytree(manifests[0].parent, staging)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.move(staging, dest)
    return Champion(version=str(version.version), bundle_dir=dest, bundle_hash=bundle.bundle_hash)


def resolve_bundle(
    bundle: Path | None,
    *,
    archive: Path,
    tracking_uri: str,
    model_name: str,
    alias: str = "champion",
) -> tuple[Path, str]:
    """The bundle to serve or rate with, verified and archived under ``archive/<bundle hash>``.

    Args:
        bundle: A bundle folder, or None for the registry's ``model_name@alias``.
        archive: Folder keeping every bundle used, one sub-folder per bundle hash (audit
            replay reads it); the registry download is staged in ``archive/_champion``.
        tracking_uri: The MLflow store holding the registry.
        model_name: The registered model.
        alias: The registry alias to follow.

    Returns:
        (archived bundle folder, bundle hash).

    Raises:
        ChampionError: if the registry has no usable ``alias``.
        rating.bundle.BundleError: if the bundle fails verification.
        rating.compat.ModelIncompatibleError: if the bundle needs features the feature code
            does not compute.
    """
    if bundle is None:
        champion = fetch_champion(tracking_uri, model_name, archive / "_champion", alias=alias)
        bundle = champion.bundle_dir
    verified = load_bundle(bundle)
    check_compatible(verified.spec, f"bundle {bundle} ({verified.metadata.model_name})")
    archived = archive / verified.bundle_hash
    if not archived.exists():
        shutil.copytree(bundle, archived)
    return archived, verified.bundle_hash
