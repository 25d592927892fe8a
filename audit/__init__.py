"""The tamper-evident audit log: decisions and people's actions in one SHA-256 chain.

One store protocol (``AuditStore``), one implementation on SQLAlchemy Core
(``SqlAuditStore``: a SQLite file by default, PostgreSQL for scale). Imports nothing of ours.
"""

from audit.chain import verify_rows
from audit.records import (
    DEV_KEY,
    GENESIS_HASH,
    HMAC_KEY_ENV,
    MAX_RECORD_ID,
    AuditConfig,
    AuditError,
    AuditPage,
    AuditQuery,
    AuditRecordNotFoundError,
    AuditUnavailableError,
    AuditUrlError,
    DecisionRecord,
    EventPage,
    EventQuery,
    EventRecord,
    RecordCheck,
    StoredDecision,
    StoredEvent,
    VerifyResult,
    body_digest,
    canonical_json,
    event_hash,
    record_hash,
)
from audit.replay import ReplayResult, Rescorer, replay
from audit.schema import RATED_ON_PG, RATED_ON_SQLITE, parse_audit_url
from audit.store import (
    AuditStore,
    IdempotentResponse,
    Reservation,
    SqlAuditStore,
    export_checkpoints,
    open_audit_store,
    verify,
)

__all__ = [
    "DEV_KEY",
    "GENESIS_HASH",
    "HMAC_KEY_ENV",
    "MAX_RECORD_ID",
    "RATED_ON_PG",
    "RATED_ON_SQLITE",
    "AuditConfig",
    "AuditError",
    "AuditPage",
    "AuditQuery",
    "AuditRecordNotFoundError",
    "AuditStore",
    "AuditUnavailableError",
    "AuditUrlError",
    "DecisionRecord",
    "EventPage",
    "EventQuery",
    "EventRecord",
    "IdempotentResponse",
    "RecordCheck",
    "ReplayResult",
    "Rescorer",
    "Reservation",
    "SqlAuditStore",
    "StoredDecision",
    "StoredEvent",
    "VerifyResult",
    "body_digest",
    "canonical_json",
    "event_hash",
    "export_checkpoints",
    "open_audit_store",
    "parse_audit_url",
    "record_hash",
    "replay",
    "verify",
    "verify_rows",
]
