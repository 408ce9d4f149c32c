"""Configuration errors name the key; environment overrides; secrets and personal data never logged."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.logs import JsonFormatter, RedactingFilter, mask_personal, request_id

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_config_loads_and_is_sandbox() -> None:
    config = load_config(ROOT / "config.example.toml", env={})
    assert config.sandbox_mode and config.app.timezone == "Asia/Shanghai"


def test_example_config_documents_every_key() -> None:
    """Admins learn the keys from config.example.toml: each one the loader accepts is there."""
    import dataclasses
    import tomllib

    from bot.config import Config

    example = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    missing = [f"{section.name}.{key.name}" for section in dataclasses.fields(Config)
               for key in dataclasses.fields(section.default_factory())  # type: ignore[misc]
               if key.name not in example.get(section.name, {})]
    assert missing == []


@pytest.mark.parametrize(
    "text, key",
    [
        ('[wechat]\napp_secrett = "x"\n', "wechat.app_secrett"),
        ('[wechatt]\napp_id = "x"\n', "[wechatt]"),
        ('[server]\nport = "8080"\n', "server.port"),
        ('[wechat]\nmode = "secure"\n', "wechat.mode"),
        ('[wechat]\nmode = "safe"\nencoding_aes_key = "short"\n', "wechat.encoding_aes_key"),
        ('[sandbox]\nenabled = "false"\n', "wechat.app_id"),
        ('[server]\nworkers = 0\n', "server.workers"),
        ('[tickets]\ntakeover_ack_minutes = -1\n', "tickets.takeover_ack_minutes"),
        ("[server\n", "config.toml"),
        ('[database]\nurl = "mysql://root@localhost/test"\n', "database.url"),
        ('[database]\nurl = "postgresql+psycopg2://u:pw@h/db"\n', "database.url"),
        ('[database]\nurl = "var/bot.db"\n', "database.url"),
    ],
)
def test_bad_config_names_the_key_in_one_line(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env={})
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
        ("postgres://u:pw@h/db", "postgresql+asyncpg://u:pw@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_plain_database_url_gets_the_asyncio_driver(tmp_path: Path, url: str, expected: str) -> None:
    """An admin pastes the URL another tool uses: it was a traceback deep inside the migration."""
    assert load_config(write(tmp_path, f'[database]\nurl = "{url}"\n'), env={}).database.url == expected
    assert load_config(None, env={"RESIDENT_BOT_DATABASE_URL": url}).database.url == expected


def test_database_url_error_does_not_show_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[database]\nurl = "mysql://root:hunter2@db/x"\n'), env={})
    assert "hunter2" not in str(err.value)


def test_environment_overrides_every_key_with_types(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9000\n[wechat]\napp_id = "wxfile"\n')
    env = {"RESIDENT_BOT_SERVER_PORT": "9100", "RESIDENT_BOT_WECHAT_APP_ID": "wxenv",
           "RESIDENT_BOT_WECHAT_APP_SECRET": "s3cret-value", "RESIDENT_BOT_WECHAT_REPLY_DEADLINE": "3.5",
           "RESIDENT_BOT_SANDBOX_SIMULATOR": "false", "RESIDENT_BOT_DATABASE_URL": "sqlite+aiosqlite:///x.db"}
    config = load_config(path, env=env)
    assert config.server.port == 9100 and config.wechat.app_id == "wxenv"
    assert config.wechat.reply_deadline == 3.5 and config.sandbox.simulator is False
    assert not config.sandbox_mode  # real credentials given
    assert "s3cret-value" not in repr(config)
    assert "s3cret-value" in config.secrets()


@pytest.mark.parametrize(
    "env, key",
    [
        ({"RESIDENT_BOT_SERVER_PORT": "eighty"}, "server.port"),
        ({"RESIDENT_BOT_WECHAT_APPSECRET": "x"}, "wechat.appsecret"),
        ({"RESIDENT_BOT_NOPE_X": "1"}, "RESIDENT_BOT_NOPE_X"),
    ],
)
def test_bad_environment_override_names_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env=env)
    assert key in str(err.value)


def test_cli_start_up_error_is_one_line_without_secret(tmp_path: Path) -> None:
    path = write(tmp_path, '[wechat]\napp_secret = "TopSecretValue123"\nmode = "bogus"\n')
    proc = subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "db", "upgrade"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "wechat.mode" in proc.stderr
    assert "TopSecretValue123" not in proc.stderr + proc.stdout


def test_mask_personal_data() -> None:
    text = "电话13812345678，身份证51082119500101123X，座机0839-7201234"
    masked = mask_personal(text)
    assert "13812345678" not in masked and "138****5678" in masked
    assert "51082119500101123X" not in masked and "510821********123X" in masked
    assert "0839-7201234" in masked


def test_log_records_are_redacted_including_exceptions_and_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(["AppSecretXYZ", "TokenABC"]))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    request_id.set("rid42")
    try:
        logger.info("secret %s and phone %s", "AppSecretXYZ", "13900001111", extra={"fields": {"t": "TokenABC"}})
        try:
            raise ValueError("bad token TokenABC for 13900001111")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "AppSecretXYZ" not in out and "TokenABC" not in out and "13900001111" not in out
    first = json.loads(out.splitlines()[0])
    assert first["request_id"] == "rid42" and first["t"] == "***"
