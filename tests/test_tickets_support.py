"""Shared pieces of the ticket tests: the mock WeChat API, a config pointing at it, grids, a clock.

(No tests here; pytest collects the module harmlessly.)
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable


from bot.config import Config
from bot.sandbox.mock_wechat import MockWeChat
from bot.services.grids import GridDirectory, parse_grids_file
from bot.storage.db import create_engine
from tests.conftest import ROOT, make_config
from tests.test_outbound_helpers import SECRET, mock  # noqa: F401 (mock is the shared mock-WeChat fixture)

SAMPLE_GRIDS = ROOT / "samples" / "grids.toml"
ADMIN, DUTY, ZHANG, LI, CHEN = "13900000001", "0839-7200000", "13800000011", "13800000012", "13800000013"
OPENIDS = {ADMIN: "oAdmin0000000000000001", ZHANG: "oZhang0000000000000001", LI: "oLi000000000000000001",
           CHEN: "oChen00000000000000001", DUTY: "oDuty00000000000000001"}


class Clock:
    """A clock tests move by hand (datetime, UTC)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def tickets_config(db_url: str, mock: MockWeChat | None, tmp_path: Path, **tickets: Any) -> Config:
    wechat: dict[str, Any] = {"app_secret": SECRET, "api_timeout": 2.0}
    if mock is not None:
        wechat["api_base_url"] = mock.base_url
    return make_config(db_url, wechat=wechat, app={"data_dir": str(tmp_path)},
                       outbox={"poll_interval": 0.05, "backoff_base": 0.05},
                       tickets={"assign_template_id": "TPL_ASSIGN", "link_secret": "page-link-secret-xyz",
                                "timer_poll_seconds": 3600.0, **tickets})


async def import_and_bind(db_url: str, path: Path = SAMPLE_GRIDS) -> dict[str, int]:
    """Import the sample grids and bind every person to a WeChat openid (directly, not via chat)."""
    engine = create_engine(db_url, 2)
    try:
        grids = GridDirectory(engine)
        await grids.import_file(parse_grids_file(path))
        ids: dict[str, int] = {}
        for phone, openid in OPENIDS.items():
            worker = await grids.worker_by_phone(phone)
            assert worker is not None
            code = await grids.create_invite(worker["id"], 1)
            assert await grids.bind(code, openid) is not None
            ids[phone] = worker["id"]
        return ids
    finally:
        await engine.dispose()


async def eventually(probe: Callable[[], Any], timeout: float = 8.0) -> Any:
    """Poll ``probe`` until it returns something truthy (outbox delivery is asynchronous by design)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
