"""Sandbox wiring decisions: where the mock WeChat API lives when no real credentials are set."""

from __future__ import annotations

from bot.config import Config, replace

MOCK_PREFIX = "/_sandbox/wechat"


def sandbox_config(config: Config) -> Config:
    """In sandbox mode, point the WeChat API client at the mock mounted inside this very app."""
    if not config.sandbox_mode or config.wechat.api_base_url:
        return config
    host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::", "") else config.server.host
    base = f"http://{host}:{config.server.port}{MOCK_PREFIX}/cgi-bin/"
    return replace(config, wechat={"api_base_url": base})
