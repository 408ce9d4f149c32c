"""Configuration: one TOML file, every key overridable by an environment variable.

Why this shape: admins copy ``config.example.toml`` and fill in a few values; operators override single
keys per deployment with ``RESIDENT_BOT_<SECTION>_<KEY>`` (e.g. ``RESIDENT_BOT_WECHAT_APP_SECRET``).
A typo must not be silently ignored, so unknown keys, wrong types and missing required values stop
start-up with one line that names the key. Secret values are never part of an error or a repr.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping, get_type_hints

ENV_PREFIX = "RESIDENT_BOT_"
MESSAGE_MODES = ("plain", "compatible", "safe")


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the key."""


def secret(default: str = "") -> Any:
    """A string field whose value must never be shown (logs, errors, repr)."""
    return field(default=default, repr=False, metadata={"secret": True})


@dataclass(frozen=True)
class WeChatConfig:
    app_id: str = ""
    app_secret: str = secret()
    token: str = secret("sandbox-token")
    encoding_aes_key: str = secret()
    mode: str = "plain"
    api_base_url: str = ""
    timestamp_window: int = 300
    reply_deadline: float = 4.0
    max_body_bytes: int = 65536
    api_timeout: float = 5.0
    menu_file: str = "menu.toml"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    public_url: str = ""


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///var/resident-bot.db"
    pool_size: int = 10


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""


@dataclass(frozen=True)
class AppConfig:
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"
    log_format: str = "json"
    faq_dir: str = "faq"
    intents_dir: str = "intents"
    catalog_file: str = "../shared/catalog/service-items.tsv"
    data_dir: str = "var"
    reload_interval: float = 2.0


@dataclass(frozen=True)
class SandboxConfig:
    enabled: str = "auto"
    mock_port: int = 0
    simulator: bool = True


@dataclass(frozen=True)
class OutboxConfig:
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    batch_size: int = 50
    poll_interval: float = 0.5
    rate_per_second: float = 100.0
    receipt_retry_delays: str = "60 300 1800"  # seconds; one re-send per value after a "system failed" receipt

    @property
    def receipt_delays(self) -> tuple[timedelta, ...]:
        """``receipt_retry_delays`` parsed; raises ValueError on anything but non-negative seconds."""
        seconds = [float(v) for v in self.receipt_retry_delays.replace(",", " ").split()]
        if not all(math.isfinite(s) and s >= 0 for s in seconds):
            raise ValueError("delays must be finite and not negative")
        return tuple(timedelta(seconds=s) for s in seconds)


@dataclass(frozen=True)
class TicketsConfig:
    """Tickets for grid workers (issue 4): time limits, links to the worker's ticket page, templates."""

    link_secret: str = secret()  # HMAC key of ticket-page links; empty = derived from wechat.token/app_secret
    link_ttl_hours: int = 72
    dedup_seconds: int = 600
    accept_minutes: int = 30  # working minutes to accept (签收)
    proxy_done_workdays: int = 2
    report_done_hours: int = 24
    human_done_hours: int = 4
    takeover_idle_minutes: int = 120  # a 转人工 conversation silent this long goes back to the bot
    takeover_ack_minutes: int = 10  # during one, the resident hears "已转给网格员X" at most this often (0: every message)
    warn_ratio: float = 0.8  # the reminder goes out at this share of the time allowed
    work_start: str = "08:30"
    work_end: str = "17:30"
    timer_poll_seconds: float = 30.0
    assign_template_id: str = ""  # empty: customer-service text instead of a template message
    progress_template_id: str = ""
    escalate_template_id: str = ""
    worker_template_id: str = ""  # a 客服消息 to a worker outside the 48-hour window goes as this template; empty: none
    invite_ttl_hours: int = 72
    media_dir: str = ""  # empty: <app.data_dir>/ticket-media
    nearby_meters: float = 300.0
    nearby_days: int = 14


@dataclass(frozen=True)
class NoticesConfig:
    """Scheduled community notices (bot/services/notices.py). Maps are "key=value; key=value" strings
    because config values are scalars (one type per key, overridable by one environment variable)."""

    dir: str = "notices"
    announcements_dir: str = "announcements"
    categories: str = "平安巡防,人居环境整治,义诊,志愿服务,政策宣传,停水停电"
    urgent_categories: str = "停水停电"
    default_categories: str = ""
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    evening_time: str = "19:00"
    grace_minutes: int = 60
    send_rate: float = 20.0
    daily_cap: int = 0
    chunk_size: int = 500
    tick_seconds: float = 30.0
    lease_seconds: float = 120.0
    custom_window_hours: float = 48.0
    channels: str = "停水停电=template"
    default_channel: str = "custom"
    template_ids: str = ""
    scheduler: bool = True


@dataclass(frozen=True)
class Config:
    wechat: WeChatConfig = field(default_factory=WeChatConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    app: AppConfig = field(default_factory=AppConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    notices: NoticesConfig = field(default_factory=NoticesConfig)  # issue 5: notices
    tickets: TicketsConfig = field(default_factory=TicketsConfig)  # issue 4

    @property
    def sandbox_mode(self) -> bool:
        """Sandbox when asked for, or (auto) when no real AppID/AppSecret are configured."""
        flag = self.sandbox.enabled.lower()
        if flag in ("true", "yes", "1"):
            return True
        if flag in ("false", "no", "0"):
            return False
        return not (self.wechat.app_id and self.wechat.app_secret)

    def secrets(self) -> list[str]:
        """Every secret value in use, for the log redaction filter."""
        found: list[str] = []
        for section in dataclasses.fields(self):
            obj = getattr(self, section.name)
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                if f.metadata.get("secret") and isinstance(value, str) and len(value) >= 4:
                    found.append(value)
        return found


def _coerce(key: str, value: Any, target: type, from_env: bool) -> Any:
    """Convert one value to the declared type, or raise a one-line error naming the key."""
    if from_env and isinstance(value, str):
        try:
            if target is bool:
                low = value.strip().lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return low in ("true", "1", "yes")
            if target is int:
                return int(value)
            if target is float:
                return float(value)
            return value
        except ValueError:
            raise ConfigError(f"config: {key} must be {target.__name__}") from None
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, target) or (target is int and isinstance(value, bool)):
        raise ConfigError(f"config: {key} must be {target.__name__}, got {type(value).__name__}")
    return value


def _section_types(cls: type) -> dict[str, type]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _merge(raw: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    sections = _section_types(Config)
    values: dict[str, dict[str, Any]] = {name: {} for name in sections}
    for name, body in raw.items():
        if name not in sections:
            raise ConfigError(f"config: unknown section [{name}]")
        if not isinstance(body, dict):
            raise ConfigError(f"config: [{name}] must be a table")
        types = _section_types(sections[name])
        for key, value in body.items():
            if key not in types:
                raise ConfigError(f"config: unknown key {name}.{key}")
            values[name][key] = _coerce(f"{name}.{key}", value, types[key], from_env=False)
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX):].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(f"config: unknown environment variable {var}")
        key = rest[len(section) + 1:]
        types = _section_types(sections[section])
        if key not in types:
            raise ConfigError(f"config: unknown key {section}.{key} (from {var})")
        values[section][key] = _coerce(f"{section}.{key} (from {var})", value, types[key], from_env=True)
    config = Config(**{name: sections[name](**vals) for name, vals in values.items()})
    _validate(config)
    return _with_async_driver(config)


# the dialects the storage layer supports, each with the asyncio driver it runs on
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
_DIALECT_ALIASES = {"postgres": "postgresql"}


def async_database_url(url: str) -> str:
    """``url`` with the asyncio driver the storage layer runs on: ``sqlite:///x.db`` →
    ``sqlite+aiosqlite:///x.db``, ``postgresql://…`` (or ``postgres://``) → ``postgresql+asyncpg://…``.

    Why: an admin copying a URL from another tool writes the plain form, and SQLAlchemy then failed
    deep inside a migration with a traceback about async drivers. Another driver or dialect stops
    start-up with one line naming the key and the scheme only (the URL may hold a password)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError("config: database.url must look like sqlite+aiosqlite:///path "
                          "or postgresql+asyncpg://user@host:5432/db")
    dialect, _, driver = scheme.lower().partition("+")
    dialect = _DIALECT_ALIASES.get(dialect, dialect)
    wanted = ASYNC_DRIVERS.get(dialect)
    if wanted is None:
        raise ConfigError(f"config: database.url: {scheme} is not supported; "
                          "use sqlite+aiosqlite:// or postgresql+asyncpg://")
    if driver and driver != wanted:
        raise ConfigError(f"config: database.url: driver {driver} is not an asyncio driver; "
                          f"use {dialect}+{wanted}://")
    return f"{dialect}+{wanted}://{rest}"


def _with_async_driver(config: Config) -> Config:
    url = async_database_url(config.database.url)
    if url == config.database.url:
        return config
    return dataclasses.replace(config, database=dataclasses.replace(config.database, url=url))


def _validate(config: Config) -> None:
    """Cross-field rules: the things that would otherwise fail much later and less clearly."""
    wc = config.wechat
    if wc.mode not in MESSAGE_MODES:
        raise ConfigError(f"config: wechat.mode must be one of {', '.join(MESSAGE_MODES)}")
    if not wc.token:
        raise ConfigError("config: wechat.token is required")
    if wc.mode != "plain" and len(wc.encoding_aes_key) != 43:
        raise ConfigError("config: wechat.encoding_aes_key must be 43 characters in compatible/safe mode")
    if wc.app_id and not wc.app_secret and config.sandbox.enabled.lower() in ("false", "no", "0"):
        raise ConfigError("config: wechat.app_secret is required when wechat.app_id is set")
    if not config.sandbox_mode and not wc.app_id:
        raise ConfigError("config: wechat.app_id is required outside sandbox mode")
    if config.server.workers < 1:
        raise ConfigError("config: server.workers must be at least 1")
    if config.tickets.takeover_idle_minutes < 1:
        raise ConfigError("config: tickets.takeover_idle_minutes must be at least 1")
    if config.tickets.takeover_ack_minutes < 0:
        raise ConfigError("config: tickets.takeover_ack_minutes must not be negative")
    if not config.database.url:
        raise ConfigError("config: database.url is required")
    if config.sandbox.enabled.lower() not in ("auto", "true", "false", "yes", "no", "1", "0"):
        raise ConfigError("config: sandbox.enabled must be auto, true or false")
    try:
        config.outbox.receipt_delays
    except ValueError:
        raise ConfigError('config: outbox.receipt_retry_delays must be seconds separated by spaces, '
                          'e.g. "60 300 1800"') from None


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any) and the environment; raise ConfigError on the first problem."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config: file not found: {p}")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {p}: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config: {p}: not UTF-8") from None
    return _merge(raw, env)


def replace(config: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy with some keys changed, e.g. ``replace(cfg, database={"url": ...})`` (tests, CLI flags)."""
    changed = {
        name: dataclasses.replace(getattr(config, name), **values) for name, values in sections.items()
    }
    out = dataclasses.replace(config, **changed)
    _validate(out)
    return _with_async_driver(out)
