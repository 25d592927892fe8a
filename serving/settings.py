"""Every ``RISKGRADE_*`` environment variable, read by one pydantic-settings class.

Read when a process starts (the service's `ServiceConfig.from_env`, the command line's
``main``), never when a module is imported. A variable that is unset or empty leaves the
package default in place (None here). Packages below serving do not read the environment:
they get these values passed in (the audit store its URL and key, the watchdog its pid).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.errors import RiskgradeError

ENV_PREFIX = "RISKGRADE_"


class SettingsError(RiskgradeError, ValueError):
    """A ``RISKGRADE_*`` variable holds a value of the wrong kind."""


class RiskgradeSettings(BaseSettings):
    """The ``RISKGRADE_*`` variables (each field is the variable without its prefix)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True
    )

    bundle: Path | None = None
    """Bundle folder the service loads (``riskgrade serve`` sets it)."""
    bundle_hash: str | None = None
    """Expected bundle hash, pinned by the registry; unset trusts the manifest."""
    tokens: Path | None = None
    """API token file (re-read when it changes)."""
    audit_db: Path | None = None
    """SQLite audit log file."""
    audit_url: str | None = None
    """SQLAlchemy URL of the audit database (PostgreSQL); wins over ``audit_db``."""
    audit_key: SecretStr | None = None
    """Key signing the audit checkpoints (HMAC); unset: a development key, with a warning."""
    max_concurrency: int | None = None
    """Scoring requests in flight per worker; more get 503 at once."""
    max_body_bytes: int | None = None
    """Largest request body accepted (413 above)."""
    workers: int | None = None
    """BentoML worker processes."""
    predict_threads: int | None = None
    """LightGBM threads per batched tree pass (0: cores over workers)."""
    batching: bool | None = None
    """Adaptive batching of concurrent scoring calls."""
    max_batch_jobs: int | None = None
    """Calls merged into one model pass at most."""
    max_latency_ms: int | None = None
    """Latency budget: a call predicted to wait longer gets 503."""
    max_wait_ms: float | None = None
    """How long a batch waits for more calls."""
    metrics_public: bool | None = None
    """Serve ``/metrics`` without a token (for Prometheus)."""
    supervisor_pid: str | None = None
    """The ``riskgrade serve`` process a worker stops with (set by ``serve``); a value that
    names no pid is ignored (`serving.watchdog.supervisor_pid`), so it stays text here."""
    params: Path | None = None
    """Params file of the human-judgement and lifecycle settings; None: the project's."""
    raw_url: str | None = None
    """Raw store (PostgreSQL or DuckDB URL, or a folder) for scoring by customer id."""
    debug: bool = False
    """Show the traceback of errors the command line reports in one line."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RiskgradeSettings:
        """The settings in ``environ`` (default: this process's environment).

        Raises:
            SettingsError: naming the first variable whose value is invalid.
        """
        try:
            if environ is None:
                return cls()
            values = {
                name.removeprefix(ENV_PREFIX).lower(): value
                for name, value in environ.items()
                if name.startswith(ENV_PREFIX) and value != ""
            }
            return cls.model_validate({k: v for k, v in values.items() if k in cls.model_fields})
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            name = variable(str(first["loc"][0])) if first["loc"] else "RISKGRADE_*"
            raise SettingsError(
                f"environment variable {name}: {first['msg']} (got {first.get('input')!r})"
            ) from error


def variable(field: str) -> str:
    """The environment variable of a `RiskgradeSettings` field."""
    return ENV_PREFIX + field.upper()
