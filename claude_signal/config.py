"""Settings from the environment or a ``.env`` file, all prefixed ``CLAUDE_SIGNAL_``.

A missing or invalid setting must stop the program with one line that names it, so :func:`load_settings`
turns pydantic's multi-line report into :class:`ConfigError` with a single sentence.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from claude_signal.host.timezone import is_zone, machine_zone

ENV_PREFIX = "CLAUDE_SIGNAL_"
BROKER_SCHEMES = ("redis://", "rediss://", "redis+socket://")


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


def _default_home() -> Path:
    return Path("~/.claude-signal").expanduser()


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything a listener or a worker needs to know about its surroundings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default_factory=_default_home, description="data directory")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite in HOME when unset")
    broker_url: str | None = Field(default=None, description="Redis URL; embedded Redis when unset")
    signal_api: str = Field(default="http://127.0.0.1:8080", description="signal-cli-rest-api base URL")
    signal_sender: bool = Field(default=True, description="this machine reaches signal-cli-rest-api, so its "
                                "control plane sends replies and typing indicators; false on machines that "
                                "need only the broker and the database")
    account: str | None = Field(default=None, description="the bot's Signal number")
    authorized: Annotated[list[str], NoDecode] = Field(default_factory=list)
    claude_bin: str = "claude"
    claude_env: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra environment variables passed to claude, comma-separated")
    project_roots: Annotated[list[Path], NoDecode] = Field(default_factory=lambda: [Path.home()])
    host: str = Field(default_factory=lambda: socket.gethostname().split(".")[0])
    default_host: str | None = Field(default=None, description="where /session start <path> opens")

    # Timing. Defaults suit daily use; tests shorten them.
    heartbeat_interval: float = Field(default=5.0, gt=0, description="how often workers and turns say they live")
    lease_ttl: float = Field(default=30.0, gt=0, description="a running turn whose process stopped renewing for "
                             "this long is interrupted; a host whose workers stopped beating this long is offline")
    max_turns: int = Field(default=8, ge=1, le=256, description="turns this host runs at once (turn plane slots)")
    turn_timeout: float = Field(default=3600.0, gt=0, description="longest allowed Claude turn, seconds")
    idle_timeout: float = Field(default=600.0, gt=0, description="interrupt a turn silent for this long")
    approval_timeout: float = Field(default=600.0, gt=0, description="deny a permission request after this")
    visibility_timeout: float = Field(default=300.0, ge=10, description="when the broker hands a message a "
                                      "dead worker held to another; turns need no redelivery, so minutes")
    unacked_restore_interval: float = Field(default=5.0, gt=0)
    outbox_max_age: float = Field(default=86400.0, gt=0, description="give up sending a reply after this")
    signal_timeout: float = Field(default=10.0, gt=0, description="HTTP timeout towards signal-cli-rest-api")
    secret_key: SecretStr | None = Field(default=None, min_length=32,
                                         description="signs task messages; the same on every machine")
    flower_auth: str | None = Field(default=None, description="user:password for Flower started by `up --flower`")
    task_events: bool = Field(default=True, description="workers and the listener send task events, so Flower "
                              "shows every task; false saves the CPU they cost (see the README's figures)")
    send_interval: float = Field(default=0.5, ge=0, description="pause between messages to one recipient")
    attachment_over: int = Field(default=8000, ge=2000, description="send replies longer than this (bytes) "
                                                                   "as a text attachment with a preview")

    # PostgreSQL: fail a dead or blackholed server in seconds, never stall a process for good.
    db_connect_timeout: float = Field(default=10.0, gt=0, description="seconds to open a connection")
    db_statement_timeout: float = Field(default=60.0, gt=0, description="longest statement (lock waits too)")

    # The Signal edge and the hand-off from the listener to the workers.
    max_frame_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="largest websocket frame the "
                                 "listener reads from signal-cli-rest-api; 0 means no limit")
    embedded_broker_port: int = Field(default=0, ge=0, le=65535, description="loopback port of the Redis "
                                      "`up` runs; 0 picks a free one once and keeps it in HOME")
    republish_after: float = Field(default=30.0, gt=0, description="the listener publishes a message again "
                                   "when the inbox has not acknowledged it within this many seconds")

    # Scheduled prompts (/every, /at).
    timezone: str = Field(default_factory=machine_zone, description="time zone of schedule times like 09:00")
    schedule_tick: float = Field(default=15.0, gt=0, le=60, description="how often beat asks the workers for "
                                 "due schedules; a run starts at most this late")
    schedule_min_interval: float = Field(default=60.0, ge=1, description="TEST ONLY: the shortest /every "
                                         "interval and /at delay; users get one minute")
    schedule_clock_offset: float = Field(default=0.0, description="TEST ONLY: seconds added to the clock "
                                         "schedules are judged by, to simulate an outage without waiting")

    # Rich conversations: pictures, costs.
    caption_wait: float = Field(default=120.0, gt=0, le=3600, description="a picture sent alone waits this many "
                                "seconds for its caption (the next text message), then goes to Claude alone")
    daily_budget: float | None = Field(default=None, description="US dollars a person may spend on Claude a "
                                       "day (this time zone's day); new turns are refused once it is spent")

    @field_validator("daily_budget", mode="before")
    @classmethod
    def _dollars(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().removeprefix("$").strip()
            if not text:
                return None
            try:
                value = float(text)
            except ValueError:
                raise ValueError("must be an amount in US dollars, e.g. 5 or 2.50") from None
        if isinstance(value, int | float) and not (0 < value < float("inf")):
            raise ValueError("must be more than 0 US dollars (leave it unset for no budget)")
        return value

    @field_validator("authorized", mode="before")
    @classmethod
    def _authorized_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("claude_env", mode="before")
    @classmethod
    def _claude_env_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("project_roots", mode="before")
    @classmethod
    def _roots_csv(cls, value: object) -> object:
        value = _split_csv(value)
        if isinstance(value, list):
            return [Path(os.path.expanduser(str(v))) for v in value]
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not is_zone(value.strip()):
            raise ValueError("must be an IANA time zone name such as Europe/Berlin or UTC")
        return value.strip()

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        value = value.strip()
        if not value or not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("must be letters, digits, '-', '_' or '.'")
        return value

    @field_validator("flower_auth")
    @classmethod
    def _user_and_password(cls, value: str | None) -> str | None:
        if value is not None and not all(value.partition(":")[::2]):
            raise ValueError("must be user:password")
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(value).get_backend_name()
        except (ArgumentError, ValueError):
            backend = ""
        if backend not in ("sqlite", "postgresql"):
            raise ValueError("must be a sqlite:///… or postgresql://… URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _valid_broker_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(BROKER_SCHEMES):
            raise ValueError("must be a redis://…, rediss://… (TLS) or redis+socket://… URL")
        return value

    @field_validator("signal_api")
    @classmethod
    def _valid_signal_api(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'claude-signal.db'}"

    @property
    def embedded_broker_url(self) -> str:
        """Loopback TCP, as ``up`` recorded it in HOME (see :mod:`claude_signal.ops.embedded_redis`)."""
        from claude_signal.ops.embedded_redis import recorded_url

        return recorded_url(self.home, self.embedded_broker_port)

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or self.embedded_broker_url


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    name = ENV_PREFIX + "_".join(str(p) for p in first["loc"]).upper()
    return f"{name}: {first['msg'].removeprefix('Value error, ')}"


def load_settings(**overrides: object) -> Settings:
    """Read settings now; raise :class:`ConfigError` with a one-line reason on any problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_one_line(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


