import json
import shutil
from pathlib import Path

import pytest

from rating.bundle import (
    CONTENT_FILES,
    MANIFEST_FILE,
    REPORT_FILE,
    BundleError,
    BundleIntegrityError,
    attach_validation_report,
    load_bundle,
    sha256_hex,
)
from rating.calibration import PlattCalibration
from rating.policy import RatingPolicy
from rating.scale import MasterScale

ALL_FILES = (*CONTENT_FILES, MANIFEST_FILE)


def test_round_trip_restores_every_part(bundle, trained, calibration, metadata):
    # Given a written bundle, when loaded again
    loaded = load_bundle(bundle.path)
    # Then every part equals what was written
    assert loaded.model_text == trained.model_text
    assert loaded.calibration == calibration
    assert loaded.scale == MasterScale()
    assert loaded.policy == RatingPolicy()
    assert loaded.spec == trained.spec
    assert loaded.reasons.entry("debt_ratio").code == "FIN01"
    assert loaded.reference["score"]["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert loaded.metadata == metadata
    assert loaded.bundle_hash == sha256_hex((bundle.path / MANIFEST_FILE).read_bytes())
    assert sorted(p.name for p in bundle.path.iterdir()) == sorted(ALL_FILES)


def test_writing_is_deterministic(tmp_path, make_bundle):
    first = make_bundle(tmp_path / "a")
    second = make_bundle(tmp_path / "b")
    assert first.bundle_hash == second.bundle_hash
    for name in ALL_FILES:
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes()


def test_bundle_holds_only_text_and_json_never_pickle(bundle):
    for name in ALL_FILES:
        data = (bundle.path / name).read_bytes()
        assert not data.startswith(b"\x80"), name  # pickle protocol 2+ magic
        text = data.decode("utf-8")
        if name.endswith(".json"):
            json.loads(text)
        else:
            assert text.startswith("tree\n")


@pytest.mark.parametrize("name", ALL_FILES)
def test_changing_one_byte_of_any_file_names_that_file(bundle, name):
    # Given one byte of one file changed
    path: Path = bundle.path / name
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] = ord("7") if data[middle] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    # When loaded, then the integrity error names the file
    with pytest.raises(BundleIntegrityError) as caught:
        load_bundle(bundle.path)
    assert caught.value.filename == name
    assert name in str(caught.value)


def test_rewritten_manifest_is_caught_by_the_expected_hash(bundle, make_bundle):
    # Given a consistent forgery: a file edited and its manifest recomputed
    forged = make_bundle(bundle.path, overwrite=True, calibration=PlattCalibration(a=5.0))
    assert forged.bundle_hash != bundle.bundle_hash
    # Then pinning the original bundle hash rejects it, naming the manifest
    with pytest.raises(BundleIntegrityError, match=r"manifest\.json: bundle hash"):
        load_bundle(bundle.path, expected_hash=bundle.bundle_hash)


def test_missing_and_unknown_files_are_refused_by_name(bundle):
    (bundle.path / "extra.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(BundleIntegrityError, match=r"extra\.pkl"):
        load_bundle(bundle.path)
    (bundle.path / "extra.pkl").unlink()
    (bundle.path / "reasons.json").unlink()
    with pytest.raises(BundleIntegrityError) as caught:
        load_bundle(bundle.path)
    assert caught.value.filename == "reasons.json"


def test_inconsistent_parts_are_refused_at_write(tmp_path, trained, make_bundle):
    reordered = trained.spec.select(list(reversed(trained.spec.names)))
    with pytest.raises(BundleError, match=r"model\.txt: model features"):
        make_bundle(tmp_path / "x", spec=reordered)
    with pytest.raises(
        BundleError, match=r"reference\.json: non-finite number inf at \$\.score\.edges\[1\]"
    ):
        make_bundle(tmp_path / "y", reference={"score": {"edges": [0.0, float("inf")]}})
    with pytest.raises(BundleError, match=r"metadata\.json"):
        make_bundle(tmp_path / "z", metadata={"version": "1"})
    make_bundle(tmp_path / "ok")
    with pytest.raises(BundleError, match="already exists"):
        make_bundle(tmp_path / "ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]  # failed writes leave nothing


def test_given_a_report_when_attached_then_it_travels_hashed_in_the_manifest(bundle, tmp_path):
    # Given a bundle written without a validation report (as before reports travelled)
    assert not bundle.has_validation_report and bundle.read_validation_report() is None
    # When the report is attached
    sealed = attach_validation_report(bundle.path, "<h1>validation ✓</h1>")
    # Then it is listed and hashed in the manifest, the other files are unchanged
    assert sealed.file_hashes[REPORT_FILE] == sha256_hex("<h1>validation ✓</h1>".encode())
    assert {k: v for k, v in sealed.file_hashes.items() if k != REPORT_FILE} == bundle.file_hashes
    assert sealed.bundle_hash != bundle.bundle_hash
    # And it comes with a copy of the folder anywhere, verified
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(sealed.path, copy)
    assert load_bundle(copy, expected_hash=sealed.bundle_hash).read_validation_report() == (
        "<h1>validation ✓</h1>".encode()
    )


def test_given_a_bundle_with_a_report_when_the_report_is_edited_or_dropped_then_refused(
    bundle,
):
    sealed = attach_validation_report(bundle.path, "<p>report</p>")
    # When the report is edited after loading, then reading it names the file
    (sealed.path / REPORT_FILE).write_text("<p>forged</p>")
    with pytest.raises(BundleIntegrityError, match=REPORT_FILE):
        sealed.read_validation_report()
    # And loading names it too; a listed report removed is missing
    with pytest.raises(BundleIntegrityError) as caught:
        load_bundle(sealed.path)
    assert caught.value.filename == REPORT_FILE
    (sealed.path / REPORT_FILE).unlink()
    with pytest.raises(BundleIntegrityError, match="missing"):
        load_bundle(sealed.path)


def test_given_a_report_not_in_the_manifest_when_loaded_then_refused(bundle):
    # Given a report dropped into a bundle whose manifest does not list it
    (bundle.path / REPORT_FILE).write_text("<p>unlisted</p>")
    # Then the bundle is refused, naming the file
    with pytest.raises(BundleIntegrityError, match="not in the manifest") as caught:
        load_bundle(bundle.path)
    assert caught.value.filename == REPORT_FILE
