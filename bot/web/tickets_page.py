"""The grid worker's mobile ticket page, opened from the template message — no separate login.

The link carries ``w`` (worker id), ``e`` (expiry) and ``s`` (HMAC over ticket, worker and expiry with
``tickets.link_secret``): a forged, altered or expired link gets 403 and shows nothing. Even with a
genuine link the worker must still be allowed to see the ticket (their grid, or assigned to them), and
the resident's phone and address are shown in full only to the assignee and admins.
Actions (accept, note/photo, done, transfer) go through the same :class:`~bot.services.tickets.Tickets`
state machine as the chat commands, so the same rules and the same audit trail apply.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from string import Template
from typing import Any, Callable

from aiohttp import web

from bot.services.tickets import ACTIONS, STATUS_CN, TicketError, Tickets, masked

log = logging.getLogger(__name__)

PAGE = Template((Path(__file__).with_name("static") / "ticket.html").read_text(encoding="utf-8"))
INVALID_LINK = "链接无效或已过期，请在公众号里回复“我的任务”重新打开。"
NOT_ALLOWED = "这张工单不归您处理。"
DONE_MESSAGES = {"accept": "已接单，居民已收到通知。", "note": "备注已保存。", "done": "已办结，居民会收到评价邀请。",
                 "transfer": "已转派。"}
MAX_PHOTO_BYTES = 8 * 1024 * 1024
PAGE_ACTIONS = ("accept", "note", "done", "transfer")

Getter = Callable[[web.Request], Tickets]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _refuse(status: int, text: str) -> web.Response:
    body = f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'><p style='font-size:18px;padding:16px'>{_e(text)}</p>"
    return web.Response(status=status, text=body, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _authorise(request: web.Request, tickets: Tickets) -> tuple[dict[str, Any], dict[str, Any]] | web.Response:
    try:
        ticket_id = int(request.match_info["id"])
    except ValueError:
        return _refuse(404, INVALID_LINK)
    worker_id = tickets.links.verify(ticket_id, dict(request.query), tickets.clock())
    if worker_id is None:
        log.info("ticket page: refused link for ticket %s", ticket_id)
        return _refuse(403, INVALID_LINK)
    worker = await tickets.grids.worker(worker_id)
    ticket = await tickets.get(ticket_id)
    if worker is None or ticket is None:
        return _refuse(403, INVALID_LINK)
    if not await tickets.can_see(worker, ticket):
        return _refuse(403, NOT_ALLOWED)
    return worker, ticket


def _form(request: web.Request, action: str, label: str, inner: str = "", secondary: bool = False,
          multipart: bool = False) -> str:
    enc = ' enctype="multipart/form-data"' if multipart else ""
    cls = ' class="secondary"' if secondary else ""
    return (f'<form method="post" action="{_e(request.path_qs)}"{enc}>'
            f'<input type="hidden" name="action" value="{action}">{inner}<button{cls}>{label}</button></form>')


async def _render(request: web.Request, tickets: Tickets, worker: dict[str, Any], ticket: dict[str, Any],
                  flash: str = "", error: bool = False) -> web.Response:
    full = worker["role"] in ("admin", "duty") or ticket["worker_id"] == worker["id"]
    shown = ticket if full else masked(ticket)
    names: dict[int, str] = {}
    trail = []
    for ev in await tickets.events(ticket["id"]):
        actor = ev["actor"]
        if actor.startswith("worker:"):
            wid = int(actor.split(":")[1])
            if wid not in names:
                names[wid] = ((await tickets.grids.worker(wid)) or {}).get("name", actor)
            actor = names[wid]
        elif actor.startswith("resident:"):
            actor = "居民"
        elif actor == "system":
            actor = "系统"
        verb = ACTIONS.get(ev["action"], ((), None, "", ev["action"]))[3] if ev["action"] in ACTIONS else {
            "create": "提交", "remind": "提醒", "escalate": "督办", "follow": "我也遇到了"}.get(ev["action"], ev["action"])
        note = f"：{ev['note']}" if ev["note"] else ""
        trail.append(f"<li>{_e(tickets.fmt(ev['at']))} {_e(actor)} {_e(verb)}{_e(note)}</li>")
    status = ticket["status"]
    actions = []
    if status == "pending":
        actions.append(_form(request, "accept", "接单"))
    if status in ("accepted", "in_progress"):
        actions.append(_form(request, "done", "办结",
                             '<textarea name="note" rows="2" placeholder="办理结果，如：已收材料并递交"></textarea>'))
        actions.append(_form(request, "note", "添加备注/照片",
                             '<textarea name="note" rows="2" placeholder="备注"></textarea>'
                             '<input type="file" name="photo" accept="image/*">', secondary=True, multipart=True))
    if status in ("pending", "accepted", "in_progress"):
        actions.append(_form(request, "transfer", "转派", '<input type="number" name="target" placeholder="接手网格员编号">',
                             secondary=True))
    checklist = ""
    if ticket["checklist"]:
        checklist = '<div class="card"><b>材料清单</b><ol>' + "".join(
            f"<li>{_e(c)}</li>" for c in ticket["checklist"]) + "</ol></div>"
    body = PAGE.substitute(
        id=_e(ticket["id"]), label=_e(tickets.label(ticket)), status=_e(STATUS_CN[status]),
        address=_e(shown["address"] or "—"), phone=_e(shown["phone"] or "—"), time_window=_e(ticket["time_window"] or "—"),
        content=_e(ticket["content"]), accept_due=_e(tickets.fmt(ticket["accept_due_at"])),
        done_due=_e(tickets.fmt(ticket["done_due_at"])), checklist=checklist,
        actions=f'<div class="card">{"".join(actions)}</div>' if actions else "",
        trail="".join(trail),
        flash=f'<div class="card {"error" if error else "flash"}">{_e(flash)}</div>' if flash else "",
    )
    return web.Response(text=body, content_type="text/html",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


def setup_ticket_pages(app: web.Application, get_tickets: Getter) -> None:
    async def show(request: web.Request) -> web.Response:
        tickets = get_tickets(request)
        found = await _authorise(request, tickets)
        if isinstance(found, web.Response):
            return found
        worker, ticket = found
        return await _render(request, tickets, worker, ticket)

    async def act(request: web.Request) -> web.Response:
        tickets = get_tickets(request)
        found = await _authorise(request, tickets)
        if isinstance(found, web.Response):
            return found
        worker, ticket = found
        form = await request.post()
        action = str(form.get("action", ""))
        note = str(form.get("note", "") or "").strip()
        if action not in PAGE_ACTIONS:
            return await _render(request, tickets, worker, ticket, "不支持的操作。", error=True)
        photo = form.get("photo")
        try:
            if action == "note" and photo is not None and getattr(photo, "file", None) is not None:
                content = photo.file.read(MAX_PHOTO_BYTES + 1)
                if content:
                    if len(content) > MAX_PHOTO_BYTES:
                        raise TicketError("照片太大了（最多8MB）。")
                    await _save_photo(tickets, ticket["id"], worker["id"], content)
                    note = note or "上传了照片"
            target = None
            if action == "transfer":
                raw = str(form.get("target", "")).strip()
                target = int(raw) if re.fullmatch(r"\d+", raw) else None
            ticket = await tickets.act(ticket["id"], worker, action, note, target=target)
            return await _render(request, tickets, worker, ticket, DONE_MESSAGES[action])
        except TicketError as exc:
            ticket = await tickets.get(ticket["id"]) or ticket
            return await _render(request, tickets, worker, ticket, str(exc), error=True)

    app.router.add_get("/t/{id}", show)
    app.router.add_post("/t/{id}", act)


async def _save_photo(tickets: Tickets, ticket_id: int, worker_id: int, content: bytes) -> None:
    import asyncio
    import uuid

    folder = Path(tickets.config.tickets.media_dir or Path(tickets.config.app.data_dir) / "ticket-media") / str(ticket_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"worker-{worker_id}-{uuid.uuid4().hex[:8]}.jpg"
    await asyncio.to_thread(path.write_bytes, content)
    await tickets.add_media(ticket_id, [{"type": "image", "by": f"worker:{worker_id}", "path": str(path),
                                         "size": len(content)}])
