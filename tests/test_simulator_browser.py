"""The /simulator page in real headless Chromium: a person picks a resident, talks, clicks the menu.

The app runs on a loopback port; the page posts to the simulator API, which posts real signed XML to
the webhook. Customer-service messages come from a stand-in of the mock WeChat API (same contract), so
the first test does not depend on the outbox sender; the last one runs the whole sandbox (in-app mock
WeChat API + outbox sender) end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from bot.handlers.account import WELCOME
from bot.handlers.fallback import VOICE_UNCLEAR
from bot.web.chatkit import SAMPLE_RESIDENTS
from tests.conftest import make_config
from tests.browser_helpers import NEEDS_CHROMIUM
from tests.gateway_helpers import running_app
from tests.test_simulator_api import fake_mock, sandbox_app

SCREENSHOT = Path("/tmp/resident-bot-simulator.png")
LI = next(r for r in SAMPLE_RESIDENTS if r["name"] == "李阿姨")

pytestmark = NEEDS_CHROMIUM


async def open_page(browser: Browser, url: str, problems: list[str]) -> Page:
    """A phone-sized page that records every console error and uncaught exception."""
    context = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                        is_mobile=True, has_touch=True, locale="zh-CN")
    page = await context.new_page()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            problems.append(f"console: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    await page.goto(url)
    await expect(page.locator("body[data-ready=true]")).to_have_count(1)
    return page


def bot_bubbles(page: Page) -> Any:
    return page.locator(".msg.bot .bubble:not(.pending), .msg.bot .card")


async def send_text(page: Page, text: str) -> None:
    await page.fill("#input", text)
    await page.click("#send")


async def test_resident_talks_clicks_menu_and_sends_unclear_voice(
    db_url: str, http: aiohttp.ClientSession, browser: Browser
) -> None:
    records = [{"id": 7, "touser": LI["openid"], "kind": "custom", "msgtype": "text",
                "text": "李阿姨您好，网格员明天上午上门。", "ts": 1}]
    problems: list[str] = []
    async with fake_mock(records) as (mock, _):
        config = make_config(db_url, wechat={"api_base_url": str(mock.make_url("/_sandbox/wechat/cgi-bin/"))})
        async with running_app(config, http) as (server, _, services):
            page = await open_page(browser, str(server.make_url("/simulator")), problems)

            await page.select_option("#resident", label="李阿姨")
            await expect(page.locator("#whoami")).to_contain_text(LI["openid"])
            # The customer-service message from the mock shows up by polling, labelled as such.
            await expect(page.locator(".msg.custom .bubble")).to_have_text(records[0]["text"])
            await expect(page.locator("#status")).to_contain_text("已连接")

            await send_text(page, "社区医院几点开门？")
            await expect(page.locator(".msg.me .bubble").last).to_have_text("社区医院几点开门？")
            await expect(bot_bubbles(page)).to_have_count(2)
            assert (await bot_bubbles(page).last.inner_text()).strip()

            await page.click("#menubar button[data-key=GUIDE]")
            await expect(page.locator(".note").last).to_contain_text("办事指南")
            await expect(bot_bubbles(page)).to_have_count(3)

            await page.click("#voice")
            await expect(page.locator("#voice")).to_have_attribute("aria-pressed", "true")
            await page.click("#send")  # nothing typed: WeChat could not recognise the speech
            await expect(bot_bubbles(page).last).to_have_text(VOICE_UNCLEAR)
            await page.click("#voice")

            await page.click("#location")
            await expect(page.locator(".msg.me .bubble").last).to_contain_text("普子岭社区")
            await expect(bot_bubbles(page)).to_have_count(5)

            await page.fill("#scene", "grid:3")
            await page.click("#follow")
            await expect(bot_bubbles(page).last).to_have_text(WELCOME)
            resident = await services.residents.get(LI["openid"])
            assert resident and resident["scene"] == "grid:3"

            await page.screenshot(path=str(SCREENSHOT), full_page=False)
            await page.context.close()  # before the servers go: a poll to a closed port is not a page bug
    assert problems == []


async def test_message_text_is_never_html(db_url: str, http: aiohttp.ClientSession, browser: Browser) -> None:
    problems: list[str] = []
    async with running_app(make_config(db_url, mode="safe"), http) as (server, _, _s):
        page = await open_page(browser, str(server.make_url("/simulator")), problems)
        await expect(page.locator("#mode-badge")).to_contain_text("安全模式")
        hostile = '<img src=x onerror="document.body.dataset.pwned=1">'
        await send_text(page, hostile)
        await expect(page.locator(".msg.me .bubble").last).to_have_text(hostile)
        await expect(bot_bubbles(page)).to_have_count(1)
        assert await page.locator("#chat img").count() == 0
        assert await page.evaluate("document.body.dataset.pwned") is None
        await page.context.close()
    # Without a mock the page says the channel is not connected, but nothing is a JS error.
    assert problems == []


async def test_new_resident_gets_a_fresh_openid_and_can_follow(
    db_url: str, http: aiohttp.ClientSession, browser: Browser
) -> None:
    problems: list[str] = []
    async with running_app(make_config(db_url, mode="compatible"), http) as (server, _, services):
        page = await open_page(browser, str(server.make_url("/simulator")), problems)
        await page.select_option("#resident", value="__new__")
        await expect(page.locator("#whoami")).to_contain_text("新居民")
        openid = (await page.input_value("#resident"))
        assert openid.startswith("oSimNew") and openid not in {r["openid"] for r in SAMPLE_RESIDENTS}
        await page.click("#follow")
        await expect(bot_bubbles(page).last).to_have_text(WELCOME)
        resident = await services.residents.get(openid)
        assert resident and resident["subscribed"] and resident["scene"] is None
        # Switching back shows the earlier resident's own (empty) conversation, not the new one's.
        await page.select_option("#resident", label="张大爷")
        await expect(bot_bubbles(page)).to_have_count(0)
        await page.context.close()
    assert problems == []


async def test_late_answer_shows_up_as_customer_service_message(db_url: str, browser: Browser) -> None:
    """The whole sandbox: webhook answers ``success`` past the deadline, the outbox sender delivers the
    answer through the in-app mock WeChat API, and the page's polling shows it."""
    problems: list[str] = []
    async with sandbox_app(make_config(db_url, mode="compatible", wechat={"reply_deadline": 0.0})) as base:
        page = await open_page(browser, base + "/simulator", problems)
        await send_text(page, "办低保要带啥材料")
        await expect(page.locator(".note").last).to_contain_text("success")
        custom = page.locator(".msg.custom .bubble")
        await expect(custom).to_have_count(1, timeout=10_000)
        assert (await custom.inner_text()).strip()
        await expect(page.locator(".msg.custom .label")).to_have_text("客服消息")
        await expect(page.locator("#status")).to_contain_text("已连接")
        await page.context.close()
    assert problems == []
