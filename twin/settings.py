"""One settings object (pydantic-settings), built once at start-up and passed down.

Every value can come from a CLI flag, an environment variable with the ``PUMPTWIN_`` prefix
(nested sections with ``__``: ``PUMPTWIN_INFLUX__URL``), or a ``.env`` file in the working
directory, in that order of precedence. Secrets are ``SecretStr``: never printed, never logged.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin.alarms.escalation import DEFAULT_POLICY, EscalationPolicy, Tier
from twin.contract.alarms import Priority


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        description="mqtt://host:port (mqtts:// for TLS); unset: an embedded broker in the same process",
    )
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(default=None, description="CA certificate for mqtts://")
    sites: list[str] = Field(default_factory=list, description="sites this twin owns; empty: all sites")


class InfluxSettings(BaseModel):
    """Where time series go. Any InfluxDB serving the v1 API: 1.x, 2.x (v1 compatibility), 3.x."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="http(s)://host:port; unset: points are spooled to disk only")
    database: str = "pumptwin"
    retention_policy: str | None = None
    username: str | None = Field(default=None, description="InfluxDB 1.x user (2.x: any name with a token)")
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="InfluxDB 2.x/3.x API token (sent as 'Token ...')")
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="points per write request, at most")
    flush_interval_s: float = Field(default=1.0, gt=0, description="longest a point waits before it is written")
    timeout_s: float = Field(default=10.0, gt=0, description="longest wait for one HTTP answer")
    gzip: bool = True
    retry_initial_s: float = Field(default=0.5, gt=0, description="first retry delay; doubles per attempt")
    retry_max_s: float = Field(default=30.0, gt=0, description="longest delay between two retries")
    drain_on_close_s: float = Field(
        default=5.0, ge=0, description="at shutdown, how long the spool may still be sent; the rest waits on disk"
    )
    spool_dir: Path = Path("var/spool")
    spool_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024, description="disk the spool may use")


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class AuthSettings(BaseModel):
    """Console logins (``twin.api.auth``). Accounts live in ``<data_dir>/users.sqlite``."""

    model_config = ConfigDict(extra="forbid")

    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="a login lasts this long (default: one clinical shift)"
    )
    cookie_secure: bool = Field(
        default=False,
        description="mark the session cookie Secure (HTTPS only); set it whenever the console is served over TLS",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="if set, GET /metrics needs 'Authorization: Bearer <token>'; unset, /metrics is open",
    )


DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
"""URL schemes of a PostgreSQL database (libpq's two, and SQLAlchemy's for the same driver)."""


class DatabaseSettings(BaseModel):
    """The shared database of twin replicas (``twin.store.postgres``). Unset: the single-machine
    SQLite files in the data directory."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/database; unset: SQLite files in the data directory",
    )
    call_timeout_s: float = Field(default=10.0, gt=0, description="longest a store call may take (client side)")
    pool_max: int = Field(default=8, ge=2, le=100, description="connections one replica may hold")

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, url: SecretStr | None) -> SecretStr | None:
        if url is None:
            return None
        scheme = url.get_secret_value().split("://", 1)[0].lower()
        if "://" not in url.get_secret_value() or scheme not in DATABASE_SCHEMES:
            raise ValueError(
                f"the database URL must start with one of {', '.join(s + '://' for s in DATABASE_SCHEMES)}"
            )
        return url


def default_replica_id() -> str:
    """Host name, process id and a random suffix: unique per process, as a lease holder must be."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class ClusterSettings(BaseModel):
    """Scale-out (``twin.cluster``): used only with a database URL."""

    model_config = ConfigDict(extra="forbid")

    partitions: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="P, the number of site partitions; fixed for a deployment (changing it re-homes every site)",
    )
    lease_ttl_s: float = Field(
        default=10.0, gt=0, description="a partition lease (and a heartbeat) lasts this long unless renewed"
    )
    replica_id: str = Field(
        default_factory=default_replica_id,
        min_length=1,
        max_length=200,
        description="this replica's id; must be unique per process (default: host-pid-random)",
    )
    http_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="where the other replicas reach this replica's API (default: http://<host name>:<port>)",
    )


class EscalationTierSettings(BaseModel):
    """One tier of an escalation ladder (``twin.alarms.escalation``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="who they are on the ward, e.g. charge nurse")
    after_s: float = Field(gt=0, le=7 * 86400, description="seconds an alarm has waited for an acknowledgement")
    notify: list[str] = Field(min_length=1, description="user names, or role:<role> for every account of a role")


def _tiers(priority: Priority) -> list[EscalationTierSettings]:
    return [
        EscalationTierSettings(name=t.name, after_s=t.after.total_seconds(), notify=list(t.notify))
        for t in DEFAULT_POLICY.ladder(priority)
    ]


class EscalationSettings(BaseModel):
    """Escalation of unanswered alarms, and the optional webhook to a paging system
    (``twin.service.escalator``, ``twin.service.paging_webhook``). The default ladders and why:
    ``twin.alarms.escalation``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    high: list[EscalationTierSettings] = Field(default_factory=lambda: _tiers(Priority.HIGH))
    medium: list[EscalationTierSettings] = Field(default_factory=lambda: _tiers(Priority.MEDIUM))
    low: list[EscalationTierSettings] = Field(default_factory=lambda: _tiers(Priority.LOW))
    webhook_url: str | None = Field(default=None, description="http(s) URL escalations are POSTed to; unset: none")
    webhook_token: SecretStr | None = Field(default=None, description="sent as 'Authorization: Bearer <token>'")
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=120, description="longest wait for one answer")
    webhook_attempts: int = Field(default=8, ge=1, le=100, description="tries per escalation before giving up")
    webhook_retry_initial_s: float = Field(default=1.0, gt=0, description="first retry delay; doubles per attempt")
    webhook_retry_max_s: float = Field(default=60.0, gt=0, description="longest delay between two tries")

    @model_validator(mode="after")
    def _a_ladder(self) -> Self:
        self.policy()  # raises ValueError (a settings error at start-up) for a policy that is not a ladder
        return self

    def policy(self) -> EscalationPolicy:
        """The ladders as the pure escalation machine takes them (levels numbered 1, 2, ...)."""
        ladders = {
            priority: tuple(
                Tier(n, t.name, timedelta(seconds=t.after_s), tuple(t.notify)) for n, t in enumerate(tiers, start=1)
            )
            for priority, tiers in (
                (Priority.HIGH, self.high),
                (Priority.MEDIUM, self.medium),
                (Priority.LOW, self.low),
            )
        }
        return EscalationPolicy(ladders if self.enabled else {})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PUMPTWIN_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    data_dir: Path = Field(default=Path("var"), description="journal database, spool and other state")
