"""The audit store the settings name, as the command line opens it (`serving.stores`)."""

from __future__ import annotations

import pytest

from serving.settings import RiskgradeSettings
from serving.stores import audit_key, open_store, people_store


def _env(**values: str) -> RiskgradeSettings:
    return RiskgradeSettings.from_environ({f"RISKGRADE_{k.upper()}": v for k, v in values.items()})


def test_given_no_store_yet_when_a_run_does_not_record_then_there_is_none_and_no_file(tmp_path):
    # Given no audit URL and no SQLite file
    default = tmp_path / "audit.db"
    # When a portfolio run that does not record asks for the people's store
    found = people_store(_env(), default)
    # Then there is none, and nothing was created
    assert found is None
    assert not default.exists()


def test_given_no_store_yet_when_a_run_records_then_the_sqlite_file_is_created(tmp_path):
    # Given no audit URL and no SQLite file
    default = tmp_path / "audit.db"
    # When a run that records asks for it
    store = people_store(_env(), default, required=True)
    # Then the SQLite store is created there, and a later run that does not record finds it
    assert store is not None
    store.close()
    assert default.is_file()
    again = people_store(_env(), default)
    assert again is not None and again.dialect == "sqlite"
    again.close()


def test_given_a_missing_file_when_opened_without_create_then_it_is_named(tmp_path):
    # Given a SQLite file that does not exist
    missing = tmp_path / "nowhere.db"
    # When it is opened without create
    # Then the error names it
    with pytest.raises(FileNotFoundError, match=r"nowhere\.db"):
        open_store(_env(), tmp_path / "audit.db", missing)


def test_given_an_audit_url_when_opened_then_postgresql_unless_a_file_is_named(pg_url, tmp_path):
    # Given RISKGRADE_AUDIT_URL naming PostgreSQL and a key
    env = _env(audit_url=pg_url, audit_key="k3y")
    assert audit_key(env) == b"k3y"
    # When the people's store is asked for (no SQLite file exists)
    store = people_store(env, tmp_path / "audit.db")
    # Then it is the PostgreSQL one
    assert store is not None and store.dialect == "postgresql"
    store.close()
    # And a file named by the caller wins over the URL
    named = open_store(env, tmp_path / "audit.db", tmp_path / "mine.db", create=True)
    assert named.dialect == "sqlite"
    named.close()
    assert (tmp_path / "mine.db").is_file()
    assert not (tmp_path / "audit.db").exists()
