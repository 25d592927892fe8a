"""The model bundle: a folder of safe, hashed artifacts that serving loads (no pickle).

Layout: ``model.txt`` (LightGBM text model) and canonical JSON files for the calibration,
master scale, policy, feature spec, reason dictionary, reference distributions and metadata,
plus ``manifest.json`` holding the SHA-256 of every file. The validation report written by
training travels inside the bundle (``validation_report.html``, optional: bundles written
before it have none), hashed in the manifest like every other file. The bundle hash is the
SHA-256 of the manifest bytes: pin it (e.g. in the model registry) and pass it as
``expected_hash`` to detect a rewritten manifest; without it, loading still detects any
corrupted or edited file.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationError

from features.errors import RiskgradeError
from features.io import replace_dir
from features.spec import FeatureSpec
from rating.calibration import PlattCalibration
from rating.policy import RatingPolicy
from rating.reasons import ReasonDictionary, build_reason_dictionary
from rating.scale import MasterScale

BUNDLE_FORMAT = "riskgrade-bundle/1"
MODEL_FILE = "model.txt"
CALIBRATION_FILE = "calibration.json"
SCALE_FILE = "scale.json"
POLICY_FILE = "policy.json"
SPEC_FILE = "feature_spec.json"
REASONS_FILE = "reasons.json"
REFERENCE_FILE = "reference.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "validation_report.html"
CONTENT_FILES: tuple[str, ...] = (
    MODEL_FILE,
    CALIBRATION_FILE,
    SCALE_FILE,
    POLICY_FILE,
    SPEC_FILE,
    REASONS_FILE,
    REFERENCE_FILE,
    METADATA_FILE,
)
OPTIONAL_FILES: tuple[str, ...] = (REPORT_FILE,)
"""Files a bundle may hold (hashed in the manifest when present)."""


_Model = TypeVar("_Model", bound=BaseModel)


class BundleError(RiskgradeError, ValueError):
    """A bundle cannot be written or loaded; names the file at fault when there is one."""

    def __init__(self, message: str, filename: str | None = None) -> None:
        super().__init__(f"{filename}: {message}" if filename else message)
        self.filename = filename


class BundleIntegrityError(BundleError):
    """A bundle file is missing, unexpected, or does not match its manifest hash."""


class BundleMetadata(BaseModel):
    """Descriptive metadata of a bundle (version, training time, metrics, lineage)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1)
    trained_at: AwareDatetime
    model_name: str = "riskgrade"
    metrics: dict[str, float] = Field(default_factory=dict)
    lineage: dict[str, str] = Field(default_factory=dict)
    """E.g. git commit, DVC data hashes, MLflow run id."""
    params: dict[str, JsonValue] = Field(default_factory=dict)


@dataclass(frozen=True)
class Bundle:
    """A verified, parsed bundle."""

    model_text: str
    calibration: PlattCalibration
    scale: MasterScale
    policy: RatingPolicy
    spec: FeatureSpec
    reasons: ReasonDictionary
    reference: dict[str, Any]
    metadata: BundleMetadata
    file_hashes: dict[str, str]
    bundle_hash: str
    path: Path

    @property
    def has_validation_report(self) -> bool:
        """Whether the bundle holds its validation report."""
        return REPORT_FILE in self.file_hashes

    def read_validation_report(self) -> bytes | None:
        """The validation report's bytes, checked against the manifest; None if it has none.

        Raises:
            BundleIntegrityError: if the report is missing or was changed since loading.
        """
        if not self.has_validation_report:
            return None
        path = self.path / REPORT_FILE
        if not path.is_file():
            raise BundleIntegrityError("missing", REPORT_FILE)
        data = path.read_bytes()
        _check_hash(REPORT_FILE, data, self.file_hashes[REPORT_FILE])
        return data


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _to_builtin(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _check_finite(value: object, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number {value!r} at {where} (JSON has no NaN/inf)")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")


def canonical_json(value: object) -> bytes:
    """Deterministic JSON bytes: sorted keys, fixed separators, shortest round-trip floats.

    NumPy scalars and arrays are converted to Python values.

    Raises:
        ValueError: for NaN/inf (naming where) or values JSON cannot hold.
    """
    builtin = json.loads(json.dumps(value, default=_to_builtin, allow_nan=True))
    _check_finite(builtin, "$")
    text = json.dumps(builtin, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _model_header(model_text: str) -> dict[str, str]:
    header = {}
    for line in model_text.split("\n", 200)[:200]:
        if line.startswith("Tree="):
            break
        key, sep, value = line.partition("=")
        if sep:
            header[key.strip()] = value.strip()
    return header


def _check_model_text(model_text: str, spec: FeatureSpec) -> None:
    header = _model_header(model_text)
    objective = header.get("objective", "")
    if not objective.startswith(("binary", "cross_entropy")):
        raise BundleError(
            f"not a binary LightGBM text model (objective={objective or 'missing'!r})", MODEL_FILE
        )
    names = header.get("feature_names", "").split()
    if names != spec.names:
        raise BundleError(
            f"model features {names} differ from the feature spec {spec.names}", MODEL_FILE
        )


def _check_consistency(
    model_text: str,
    scale: MasterScale,
    policy: RatingPolicy,
    spec: FeatureSpec,
    reasons: ReasonDictionary,
) -> None:
    _check_model_text(model_text, spec)
    try:
        policy.check_scale(scale)
    except ValueError as error:
        raise BundleError(str(error), POLICY_FILE) from error
    if reasons.spec_version != spec.version:
        raise BundleError(
            f"reasons built for spec {reasons.spec_version}, bundle spec is {spec.version}",
            REASONS_FILE,
        )
    try:
        reasons.check_spec(spec)
    except ValueError as error:
        raise BundleError(str(error), REASONS_FILE) from error


def _manifest_bytes(file_hashes: Mapping[str, str]) -> bytes:
    files = dict(sorted(file_hashes.items()))
    return canonical_json(
        {"format": BUNDLE_FORMAT, "files": files, "files_digest": sha256_hex(canonical_json(files))}
    )


def write_bundle(
    directory: Path | str,
    *,
    model_text: str,
    calibration: PlattCalibration,
    scale: MasterScale,
    policy: RatingPolicy,
    spec: FeatureSpec,
    reference: Mapping[str, Any],
    metadata: BundleMetadata | Mapping[str, Any],
    reasons: ReasonDictionary | None = None,
    validation_report: str | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Write a bundle atomically (staging folder, then rename) and load it back verified.

    Args:
        directory: target folder; must not exist unless ``overwrite``.
        model_text: the LightGBM model as text (``Booster.model_to_string()``).
        calibration: Platt calibration on the model margin.
        scale: master scale.
        policy: tiers, credit policies and hard rules.
        spec: the feature spec, in the model's column order.
        reference: reference distributions for drift (JSON-able, finite numbers).
        metadata: bundle metadata (validated as `BundleMetadata`).
        reasons: reason dictionary; built from ``spec`` when omitted.
        validation_report: the HTML validation report of this model (``REPORT_FILE``).
        overwrite: replace an existing bundle folder.

    Returns:
        The bundle as `load_bundle` reads it.

    Raises:
        BundleError: if the parts are inconsistent (naming the file) or the target exists.
    """
    target = Path(directory)
    if target.exists() and not overwrite:
        raise BundleError(f"bundle folder {target} already exists (pass overwrite=True)")
    reasons = reasons or build_reason_dictionary(spec)
    try:
        meta = BundleMetadata.model_validate(metadata)
    except ValidationError as error:
        raise BundleError(str(error), METADATA_FILE) from error
    _check_consistency(model_text, scale, policy, spec, reasons)
    try:
        reference_bytes = canonical_json(dict(reference))
    except (TypeError, ValueError) as error:
        raise BundleError(str(error), REFERENCE_FILE) from error

    contents = {
        MODEL_FILE: model_text.encode("utf-8"),
        CALIBRATION_FILE: canonical_json(calibration.model_dump(mode="json")),
        SCALE_FILE: canonical_json(scale.model_dump(mode="json")),
        POLICY_FILE: canonical_json(policy.model_dump(mode="json")),
        SPEC_FILE: canonical_json(spec.model_dump(mode="json")),
        REASONS_FILE: canonical_json(reasons.model_dump(mode="json")),
        REFERENCE_FILE: reference_bytes,
        METADATA_FILE: canonical_json(meta.model_dump(mode="json")),
    }
    if validation_report is not None:
        contents[REPORT_FILE] = validation_report.encode("utf-8")
    return _seal(target, contents)


def attach_validation_report(directory: Path | str, report_html: str) -> Bundle:
    """Put (or replace) the validation report in a bundle and re-seal its manifest.

    The bundle is verified first; the other files are kept byte for byte. The bundle hash
    changes (the manifest lists the report), so record the returned ``bundle_hash``.

    Raises:
        BundleError: if the bundle does not verify.
    """
    bundle = load_bundle(directory)
    contents = {name: (bundle.path / name).read_bytes() for name in CONTENT_FILES}
    for name, data in contents.items():  # unchanged since it was verified
        _check_hash(name, data, bundle.file_hashes[name])
    contents[REPORT_FILE] = report_html.encode("utf-8")
    return _seal(bundle.path, contents)


def _seal(target: Path, contents: dict[str, bytes]) -> Bundle:
    """Write ``contents`` and their manifest into ``target`` atomically; load it back."""
    hashes = {name: sha256_hex(data) for name, data in contents.items()}
    contents = {**contents, MANIFEST_FILE: _manifest_bytes(hashes)}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    try:
        for name, data in contents.items():
            (staging / name).write_bytes(data)
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_bundle(target)


def _check_hash(name: str, data: bytes, expected: str) -> None:
    digest = sha256_hex(data)
    if digest != expected:
        raise BundleIntegrityError(f"SHA-256 {digest} differs from the manifest's {expected}", name)


def _parse_json(name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleIntegrityError(f"not valid UTF-8 JSON ({error})", name) from error


def _read_manifest(folder: Path, expected_hash: str | None) -> tuple[dict[str, str], str]:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise BundleIntegrityError("missing", MANIFEST_FILE)
    data = path.read_bytes()
    bundle_hash = sha256_hex(data)
    if expected_hash is not None and bundle_hash != expected_hash.lower():
        raise BundleIntegrityError(
            f"bundle hash {bundle_hash} differs from the expected {expected_hash}", MANIFEST_FILE
        )
    manifest = _parse_json(MANIFEST_FILE, data)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleIntegrityError(f"not a {BUNDLE_FORMAT} manifest", MANIFEST_FILE)
    files = manifest.get("files")
    if not isinstance(files, dict) or manifest.get("files_digest") != sha256_hex(
        canonical_json(files)
    ):
        raise BundleIntegrityError("file list does not match its digest", MANIFEST_FILE)
    optional = set(files) - set(CONTENT_FILES)
    if (
        not set(CONTENT_FILES) <= set(files)
        or not optional <= set(OPTIONAL_FILES)
        or data != _manifest_bytes(files)
    ):
        raise BundleIntegrityError(
            f"lists {sorted(files)}, expected {sorted(CONTENT_FILES)} (and optionally "
            f"{sorted(OPTIONAL_FILES)}) in canonical form",
            MANIFEST_FILE,
        )
    return files, bundle_hash


def load_bundle(directory: Path | str, expected_hash: str | None = None) -> Bundle:
    """Load a bundle, verifying every file against the manifest before parsing anything.

    Args:
        directory: the bundle folder.
        expected_hash: the bundle hash it must have (SHA-256 of ``manifest.json``).

    Raises:
        BundleIntegrityError: a file missing, unexpected or altered (naming the file).
        BundleError: a file that is intact but invalid or inconsistent (naming the file).
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise BundleIntegrityError(f"bundle folder {folder} does not exist")
    present = {p.name for p in folder.iterdir()}
    unknown = sorted(present - set(CONTENT_FILES) - set(OPTIONAL_FILES) - {MANIFEST_FILE})
    if unknown:
        raise BundleIntegrityError(f"unexpected file in bundle {folder}", unknown[0])
    files, bundle_hash = _read_manifest(folder, expected_hash)
    unlisted = sorted(present & set(OPTIONAL_FILES) - set(files))
    if unlisted:
        raise BundleIntegrityError(f"not in the manifest of bundle {folder}", unlisted[0])
    raw = {}
    for name in (*CONTENT_FILES, *(n for n in OPTIONAL_FILES if n in files)):
        path = folder / name
        if not path.is_file():
            raise BundleIntegrityError("missing", name)
        raw[name] = path.read_bytes()
        _check_hash(name, raw[name], files[name])

    def parse(name: str, model: type[_Model]) -> _Model:
        try:
            return model.model_validate(_parse_json(name, raw[name]))
        except ValidationError as error:
            raise BundleError(str(error), name) from error

    try:
        model_text = raw[MODEL_FILE].decode("utf-8")
    except UnicodeDecodeError as error:
        raise BundleIntegrityError("not UTF-8 text", MODEL_FILE) from error
    scale = parse(SCALE_FILE, MasterScale)
    policy = parse(POLICY_FILE, RatingPolicy)
    spec = parse(SPEC_FILE, FeatureSpec)
    reasons = parse(REASONS_FILE, ReasonDictionary)
    _check_consistency(model_text, scale, policy, spec, reasons)
    reference = _parse_json(REFERENCE_FILE, raw[REFERENCE_FILE])
    if not isinstance(reference, dict):
        raise BundleError("reference distributions must be a JSON object", REFERENCE_FILE)
    return Bundle(
        model_text=model_text,
        calibration=parse(CALIBRATION_FILE, PlattCalibration),
        scale=scale,
        policy=policy,
        spec=spec,
        reasons=reasons,
        reference=reference,
        metadata=parse(METADATA_FILE, BundleMetadata),
        file_hashes=dict(files),
        bundle_hash=bundle_hash,
        path=folder,
    )
