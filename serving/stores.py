"""The audit store the settings name: decisions and people's records, outside the service.

PostgreSQL at ``RISKGRADE_AUDIT_URL`` when it is set, else a SQLite file (the one given, or
the project's default); checkpoints signed with ``RISKGRADE_AUDIT_KEY``. The command line opens
its stores here (``audit``, ``score --record``, ``monitor --record``, the judgement and
lifecycle commands); the service opens its own from `ServiceConfig`.
"""

from __future__ import annotations

from pathlib import Path

from audit import AuditConfig, AuditStore, open_audit_store
from serving.settings import RiskgradeSettings


def audit_key(env: RiskgradeSettings) -> bytes | None:
    """The audit checkpoint key (``RISKGRADE_AUDIT_KEY``), None when unset."""
    return env.audit_key.get_secret_value().encode() if env.audit_key is not None else None


def open_store(
    env: RiskgradeSettings, default_db: Path, db: Path | None = None, *, create: bool = False
) -> AuditStore:
    """The audit store: ``db`` when given, else PostgreSQL when set, else ``default_db``.

    Args:
        env: the ``RISKGRADE_*`` settings (audit URL and key).
        default_db: the SQLite file used when neither ``db`` nor an audit URL is set.
        db: a SQLite file named by the caller (wins over the audit URL).
        create: create the SQLite file when it is missing.

    Raises:
        FileNotFoundError: if the SQLite file does not exist and ``create`` is off.
    """
    if env.audit_url and db is None:
        return open_audit_store(AuditConfig(url=env.audit_url), key=audit_key(env))
    path = db or default_db
    if not path.is_file() and not create:
        raise FileNotFoundError(f"audit database {path} does not exist")
    return open_audit_store(AuditConfig(path=path), key=audit_key(env))


def people_store(
    env: RiskgradeSettings, default_db: Path, *, required: bool = False
) -> AuditStore | None:
    """The store of people's decisions a portfolio run applies (and records to).

    Args:
        env: the ``RISKGRADE_*`` settings (audit URL and key).
        default_db: the SQLite file used when no audit URL is set.
        required: the run records to it: the SQLite file is created when missing.

    Returns:
        The store, or None when there is none yet and it is not ``required``.
    """
    if not required and not (env.audit_url or default_db.is_file()):
        return None
    return open_store(env, default_db, create=required)
