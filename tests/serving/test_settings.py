"""Every RISKGRADE_* variable is read by one settings class, when asked, never at import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from serving.service import ServiceConfig, ServiceConfigError
from serving.settings import RiskgradeSettings, SettingsError, variable

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "rating", "training", "audit", "management", "serving", "monitoring")


def test_given_variables_when_read_then_typed_and_mapped_onto_the_service_config(tmp_path):
    # Given a process environment with some RISKGRADE_* variables (one empty, one foreign)
    environ = {
        "RISKGRADE_BUNDLE": str(tmp_path / "bundle"),
        "RISKGRADE_MAX_CONCURRENCY": "4",
        "RISKGRADE_BATCHING": "false",
        "RISKGRADE_AUDIT_URL": "",
        "RISKGRADE_AUDIT_KEY": "s3cret",
        "OTHER_MAX_CONCURRENCY": "9",
    }

    # When the service configuration is built from it
    config = ServiceConfig.from_env(environ)

    # Then each value lands in its place, empty means unset, and the key stays secret
    assert config.bundle == tmp_path / "bundle"
    assert config.max_concurrency == 4
    assert config.batching.enabled is False
    assert config.audit.url is None
    assert config.audit_key is not None and config.audit_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


def test_given_a_bad_value_when_read_then_the_error_names_the_variable():
    # Given values of the wrong kind, and one out of the service's range
    with pytest.raises(SettingsError, match="RISKGRADE_DEBUG"):
        RiskgradeSettings.from_environ({"RISKGRADE_DEBUG": "perhaps"})
    with pytest.raises(ServiceConfigError, match="RISKGRADE_MAX_BODY_BYTES"):
        ServiceConfig.from_env({"RISKGRADE_MAX_BODY_BYTES": "12"})


def test_given_the_process_environment_when_read_then_the_class_sees_it(monkeypatch):
    # Given variables set in this process
    monkeypatch.setenv("RISKGRADE_WORKERS", "3")
    monkeypatch.setenv("RISKGRADE_DEBUG", "1")

    # When the settings are read without an explicit mapping
    settings = RiskgradeSettings.from_environ()

    # Then they come from os.environ
    assert settings.workers == 3 and settings.debug is True


def _documented_variables() -> set[str]:
    return {variable(name) for name in RiskgradeSettings.model_fields}


def test_every_riskgrade_variable_named_in_the_code_is_a_settings_field():
    # Given every RISKGRADE_* name written in our packages and the command line
    named = set()
    for folder in (*PACKAGES, "riskgrade"):
        for path in (ROOT / folder).rglob("*.py") if (ROOT / folder).is_dir() else []:
            named |= set(re.findall(r"\bRISKGRADE_[A-Z_]+[A-Z]\b", path.read_text()))

    # Then each one is a field of the one settings class
    assert named - {"RISKGRADE_"} <= _documented_variables()


ENTRY_MODULES = {
    "serving/service.py": "BentoML imports it to start the service; its decorator takes the "
    "worker count and timeout (ServiceConfig.from_env) when the service starts",
}
"""Modules imported only to start a process, which may read the settings at their top level."""
READS = {"environ", "getenv", "from_env", "from_environ", "RiskgradeSettings"}


def _reads_at_top_level(tree: ast.Module) -> list[str]:
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(statement, ast.Import | ast.ImportFrom):
            continue
        for node in ast.walk(statement):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            if name in READS:
                found.append(f"line {statement.lineno}: {ast.unparse(statement)[:70]}")
    return found


def test_no_package_reads_the_environment_at_import():
    # Given the module-level statements of every package module
    offenders = []
    for folder in (*PACKAGES, "riskgrade"):
        for path in (ROOT / folder).rglob("*.py") if (ROOT / folder).is_dir() else []:
            where = str(path.relative_to(ROOT))
            if where not in ENTRY_MODULES:
                offenders += [
                    f"{where} {r}" for r in _reads_at_top_level(ast.parse(path.read_text()))
                ]

    # Then none reads the environment when imported (settings are read at start-up)
    assert not offenders, offenders


def test_the_import_check_sees_a_read_at_import():
    # Given a module reading a variable at its top level
    tree = ast.parse("import os\nLIMIT = int(os.environ.get('RISKGRADE_X', '1'))\n")

    # Then the check reports it
    assert _reads_at_top_level(tree) == ["line 2: LIMIT = int(os.environ.get('RISKGRADE_X', '1'))"]
