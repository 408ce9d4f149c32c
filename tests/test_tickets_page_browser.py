"""The worker's signed ticket page in real headless Chromium (issue 4): accept, note, photo, the
documents' 取件, transfer and close as a worker on a phone would, plus refused links and masking.

The app runs on a loopback port with the mock WeChat API; the link is the one the template message
carried, so the page is opened exactly as a worker opens it from WeChat.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
from playwright.async_api import Browser, Page, expect

from bot.sandbox.mock_wechat import MockWeChat
from bot.web.tickets_page import INVALID_LINK, NOT_ALLOWED
from tests.browser_helpers import NEEDS_CHROMIUM
from tests.gateway_helpers import running_app
from tests.test_tickets_custody import RESIDENT, open_proxy_ticket, page_url, png, texts_to
from tests.test_tickets_grid_pick import assignment_to
from tests.test_tickets_support import (  # noqa: F401 (mock is a fixture)
    CHEN, LI, OPENIDS, ZHANG, eventually, import_and_bind, mock, tickets_config,
)

SCREENSHOT = Path("/tmp/resident-bot-ticket-page.png")
PHONE, ADDRESS = "13812345678", "普子岭小区2栋3单元501"

pytestmark = NEEDS_CHROMIUM


async def phone_page(browser: Browser, problems: list[str]) -> Page:
    """A phone-sized page that records console errors and uncaught exceptions."""
    context = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                        is_mobile=True, has_touch=True, locale="zh-CN")
    page = await context.new_page()
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    return page


def form(page: Page, action: str) -> object:
    return page.locator(f"form[data-action={action}]")


async def test_worker_accepts_notes_photographs_picks_up_transfers_and_the_next_closes(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, browser: Browser, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    problems: list[str] = []
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        tid = await open_proxy_ticket(emu)
        link = page_url(server, (await assignment_to(mock, OPENIDS[ZHANG], tid))["body"]["url"])
        page = await phone_page(browser, problems)
        response = await page.goto(str(link))
        assert response is not None and response.status == 200
        await expect(page.locator(".status")).to_have_text("待接单")
        body = page.locator("body")
        await expect(body).to_contain_text(PHONE)  # the assignee sees phone and address in full
        await expect(body).to_contain_text(ADDRESS)
        await expect(body).to_contain_text("户口簿")  # the checklist travelled with the ticket

        await form(page, "accept").locator("button").click()
        await expect(page.locator(".flash")).to_contain_text("已接单")
        await expect(page.locator(".status")).to_have_text("已接单")
        await eventually(texts_to(mock, RESIDENT, "已由网格员张秀英"))

        note = form(page, "note")
        await note.locator("textarea").fill("已电话联系，明早上门")
        await note.locator("button").click()
        await expect(page.locator(".flash")).to_contain_text("备注已保存")
        await expect(page.locator(".trail")).to_contain_text("已电话联系，明早上门")

        note = form(page, "note")
        await note.locator("input[type=file]").set_input_files(
            files=[{"name": "door.png", "mimeType": "image/png", "buffer": png(8, 8)}])
        await note.locator("button").click()
        await expect(page.locator(".flash")).to_contain_text("备注已保存")
        await expect(page.locator("img.photo")).to_have_count(1)
        # the photo is served back under the signed link and decodes as the 8×8 image uploaded
        await page.wait_for_function("() => { const i = document.querySelector('img.photo');"
                                     " return i && i.complete && i.naturalWidth === 8; }")

        pickup = form(page, "pickup")
        await pickup.locator("textarea").fill("户口簿原件、身份证复印件2份")
        await pickup.locator("input[type=file]").set_input_files(
            files=[{"name": "docs.png", "mimeType": "image/png", "buffer": png(4, 4)}])
        await pickup.locator("button").click()
        await expect(page.locator(".flash")).to_contain_text("已登记取件")
        await expect(page.locator(".custody")).to_contain_text("在网格员张秀英手里")
        await expect(page.locator(".custody")).to_contain_text("等居民确认")
        await expect(page.locator("img.photo")).to_have_count(2)
        await eventually(texts_to(mock, RESIDENT, "已取件：户口簿原件、身份证复印件2份"))
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        transfer = form(page, "transfer")
        await transfer.locator("select").select_option(label=f"李建国（编号{ids[LI]}）")
        await transfer.locator("input[name=note]").fill("我明天请假")
        await transfer.locator("button").click()
        await expect(page.locator(".flash")).to_contain_text("已转派")
        await expect(page.locator(".status")).to_have_text("待接单")
        # 张秀英 is still the grid's worker, no longer the assignee: masked, and no buttons but 接单
        await expect(body).not_to_contain_text(PHONE)
        await expect(body).to_contain_text("138****5678")
        await expect(form(page, "done")).to_have_count(0)
        await page.context.close()

        # 李建国 gets the ticket with his own link, accepts and closes it on the page
        link_li = page_url(server, (await assignment_to(mock, OPENIDS[LI], tid))["body"]["url"])
        page = await phone_page(browser, problems)
        await page.goto(str(link_li))
        await expect(page.locator("body")).to_contain_text(PHONE)
        await form(page, "accept").locator("button").click()
        await expect(page.locator(".status")).to_have_text("已接单")
        done = form(page, "done")
        await done.locator("textarea").fill("已收材料并递交民政办")
        await done.locator("button").click()
        await expect(page.locator(".flash")).to_contain_text("已办结")
        await expect(page.locator(".status")).to_have_text("已办结")
        await page.context.close()
        told = await eventually(texts_to(mock, RESIDENT, "已于"))
        assert any("已收材料并递交民政办" in t for t in told)
        trail = [e["action"] for e in await services.tickets.events(tid)]
        assert trail == ["create", "accept", "note", "note", "pickup", "transfer", "accept", "done"]
        ticket = await services.tickets.get(tid)
        assert ticket["status"] == "done" and ticket["worker_id"] == ids[LI]
        assert len([m for m in ticket["media"] if m.get("by") == f"worker:{ids[ZHANG]}"]) == 2
    assert problems == []


async def test_refused_links_and_a_grid_colleague_sees_the_ticket_masked(
    db_url: str, http: aiohttp.ClientSession, mock: MockWeChat, browser: Browser, tmp_path: Path
) -> None:
    ids = await import_and_bind(db_url)
    problems: list[str] = []
    async with running_app(tickets_config(db_url, mock, tmp_path), http) as (server, emu, services):
        tid = await open_proxy_ticket(emu)
        t = services.tickets
        base = server.make_url(f"/t/{tid}")
        good = t.links.sign(tid, ids[ZHANG], t.clock())
        expired = t.links.sign(tid, ids[ZHANG], t.clock() - timedelta(hours=t.config.tickets.link_ttl_hours + 1))
        forged = {**good, "s": "A" * len(good["s"])}
        someone_else = {**good, "w": str(ids[LI])}  # 张秀英's signature with another worker's id
        page = await phone_page(browser, problems)
        for params in (expired, forged, someone_else, {}):
            response = await page.goto(str(base.with_query(params)))
            assert response is not None and response.status == 403
            await expect(page.locator("body")).to_have_text(INVALID_LINK)
        # a genuine link for a worker of another grid: refused, nothing shown
        response = await page.goto(str(base.with_query(t.links.sign(tid, ids[CHEN], t.clock()))))
        assert response is not None and response.status == 403
        await expect(page.locator("body")).to_have_text(NOT_ALLOWED)

        # the grid's backup: sees the ticket, the phone and address masked, may only 接单
        await page.goto(str(base.with_query(t.links.sign(tid, ids[LI], t.clock()))))
        body = page.locator("body")
        await expect(page.locator(".status")).to_have_text("待接单")
        await expect(body).to_contain_text("138****5678")
        await expect(body).not_to_contain_text(PHONE)
        await expect(body).not_to_contain_text("3单元501")
        await expect(form(page, "accept")).to_have_count(1)
        for action in ("done", "note", "transfer", "pickup"):
            await expect(form(page, action)).to_have_count(0)
        # ...and the assignee's page shows it all
        await page.goto(str(base.with_query(good)))
        await expect(page.locator("body")).to_contain_text(PHONE)
        await expect(page.locator("body")).to_contain_text(ADDRESS)
        await page.context.close()
    # Chromium logs each refused navigation (403) as a console error; anything else is a page bug.
    assert [p for p in problems if "status of 403" not in p] == []
    assert len(problems) == 5
