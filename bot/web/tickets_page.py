"""The grid worker's mobile ticket page, opened from the template message — no separate login.

The link carries ``w`` (worker id), ``e`` (expiry) and ``s`` (HMAC over ticket, worker and expiry with
``tickets.link_secret``): a forged, altered or expired link gets 403 and shows nothing. Even with a
genuine link the worker must still be allowed to see the ticket (their grid, or assigned to them), and
the resident's phone and address are shown in full only to the assignee and admins; other workers of
the grid see them masked, and only the buttons they may use.
Actions (accept, note/photo, done, transfer, for a 代办 the documents' 取件/交件/还件 with a list or
a photo, and for a 转人工 a reply to the resident) go through the same
:class:`~bot.services.tickets.Tickets` state machine as the chat commands, so the same rules, notifications and audit trail apply. Photos are served back only under
the same signed link. For a 转人工 the page shows the conversation (the resident's messages relayed
to the worker and the worker's replies) in the trail, each with whether it arrived.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from pathlib import Path
from string import Template
from typing import Any, Awaitable, Callable

from aiohttp import web

from bot.services.takeovers import END_REASONS, why_undelivered
from bot.services.tickets import (
    ACTIONS,
    CUSTODY,
    CUSTODY_WHERE,
    NOT_AN_IMAGE,
    STATUS_CN,
    TicketError,
    Tickets,
    image_type,
    masked,
)

log = logging.getLogger(__name__)

PAGE = Template((Path(__file__).with_name("static") / "ticket.html").read_text(encoding="utf-8"))
INVALID_LINK = "链接无效或已过期，请在公众号里回复“我的任务”重新打开。"
NOT_ALLOWED = "这张工单不归您处理。"
DONE_MESSAGES = {"accept": "已接单，居民已收到通知。", "note": "备注已保存。", "done": "已办结，居民会收到评价邀请。",
                 "transfer": "已转派。", "pickup": "已登记取件，居民会收到核对通知。",
                 "handin": "已登记交件，居民会收到通知。", "giveback": "已登记还件，居民会收到核对通知。",
                 "reply": "已发给居民。"}
PHOTO_NOTE = "拍照登记，照片已存档"
PHOTO_TOO_BIG = "照片太大了（最多8MB）。"
MAX_PHOTO_BYTES = 8 * 1024 * 1024
PAGE_ACTIONS = ("accept", "reply", "note", "done", "transfer", *CUSTODY)
CUSTODY_LABELS = {"pickup": ("登记取件", "取走了哪些材料，如：户口簿原件、身份证复印件2份"),
                  "handin": ("登记交件", "交给了谁，如：已交便民服务站李老师"),
                  "giveback": ("登记还件", "还了哪些原件，如：户口簿原件已当面归还")}
OTHER_VERBS = {"create": "提交", "remind": "提醒", "escalate": "督办", "follow": "我也遇到了", "relay": "留言",
               "takeover": "重新接通人工对话", "takeover_end": "人工对话结束", "undelivered": "回复未送达"}
DELIVERY = {"pending": "（发送中）", "failed": "（未送达：{why}）"}
TAKEOVER_LIVE = "进行中：居民发的消息会转到您的微信，回复请用下面的输入框或“回复 {id} 内容”"
TAKEOVER_ENDED = "已结束（{why}），居民的消息由智能助手回答；您回复后会重新接通"

Getter = Callable[[web.Request], Tickets]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _refuse(status: int, text: str) -> web.Response:
    body = ("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<link rel=icon href='data:,'><p style='font-size:18px;padding:16px'>{_e(text)}</p>")
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


def _may(tickets: Tickets, worker: dict[str, Any], ticket: dict[str, Any], action: str) -> bool:
    """Whether to offer this button: the status allows it and the viewer may do it (the service
    checks again; this only keeps buttons that would be refused off the screen)."""
    allowed, _, who, _ = ACTIONS[action]
    return ticket["status"] in allowed and (who == "grid" or tickets.full_view(worker, ticket))


def _form(request: web.Request, action: str, label: str, inner: str = "", secondary: bool = False,
          multipart: bool = False) -> str:
    enc = ' enctype="multipart/form-data"' if multipart else ""
    cls = ' class="secondary"' if secondary else ""
    return (f'<form method="post" action="{_e(request.path_qs)}" data-action="{action}"{enc}>'
            f'<input type="hidden" name="action" value="{action}">{inner}<button{cls}>{label}</button></form>')


async def _trail(tickets: Tickets, ticket: dict[str, Any]) -> str:
    names: dict[int, str] = {}
    out = []
    events = await tickets.events(ticket["id"])
    delivery = await tickets.takeovers.deliveries(events) if ticket["kind"] == "human" else {}
    for ev in events:
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
        verb = ACTIONS[ev["action"]][3] if ev["action"] in ACTIONS else OTHER_VERBS.get(ev["action"], ev["action"])
        note = f"：{ev['note']}" if ev["note"] else ""
        sent = delivery.get(ev["id"])
        if sent is not None and sent["status"] in DELIVERY:
            note += DELIVERY[sent["status"]].format(why=why_undelivered(sent["errcode"], ev["action"] == "relay"))
        cls = ' class="undelivered"' if sent is not None and sent["status"] == "failed" else ""
        out.append(f"<li{cls}>{_e(tickets.fmt(ev['at']))} {_e(actor)} {_e(verb)}{_e(note)}</li>")
    return "".join(out)


async def _takeover(tickets: Tickets, ticket: dict[str, Any]) -> str:
    """For a 转人工: whether the worker holds the conversation now."""
    if ticket["kind"] != "human":
        return ""
    row = (await tickets.takeovers.of([ticket["id"]])).get(ticket["id"])
    if row is None:
        return ""
    if row["ended_at"] is None:
        text = TAKEOVER_LIVE.format(id=ticket["id"])
    else:
        text = TAKEOVER_ENDED.format(why=END_REASONS.get(row["end_reason"] or "", row["end_reason"] or ""))
    return f'<div class="card takeover"><b>人工对话</b><div class="row">{_e(text)}</div></div>'


async def _actions(request: web.Request, tickets: Tickets, worker: dict[str, Any], ticket: dict[str, Any]) -> str:
    out = []
    if _may(tickets, worker, ticket, "accept"):
        out.append(_form(request, "accept", "接单"))
    if ticket["kind"] == "human" and _may(tickets, worker, ticket, "reply"):
        out.append(_form(request, "reply", "回复居民",
                         '<textarea name="note" rows="3" maxlength="500" placeholder="回复居民的话，会以您的名义发到TA的微信">'
                         '</textarea>'))
    if _may(tickets, worker, ticket, "done"):
        out.append(_form(request, "done", "办结",
                         '<textarea name="note" rows="2" placeholder="办理结果，如：已收材料并递交"></textarea>'))
    if _may(tickets, worker, ticket, "note"):
        out.append(_form(request, "note", "添加备注/照片",
                         '<textarea name="note" rows="2" placeholder="备注"></textarea>'
                         '<input type="file" name="photo" accept="image/*">', secondary=True, multipart=True))
    if ticket["kind"] == "proxy":
        picked_up = any(e["action"] == "pickup" for e in await tickets.events(ticket["id"]))
        for step, (label, hint) in CUSTODY_LABELS.items():
            if _may(tickets, worker, ticket, step) and (step == "pickup" or picked_up):
                photo = '<input type="file" name="photo" accept="image/*">' if step != "handin" else ""
                out.append(_form(request, step, label, f'<textarea name="note" rows="2" placeholder="{_e(hint)}">'
                                 f'</textarea>{photo}', secondary=True, multipart=True))
    if _may(tickets, worker, ticket, "transfer"):
        options = "".join(f'<option value="{w["id"]}">{_e(w["name"])}（编号{w["id"]}）</option>'
                          for w in await tickets.grids.workers() if w["id"] != ticket["worker_id"])
        out.append(_form(request, "transfer", "转派", '<select name="target"><option value="">选择接手的人</option>'
                         f'{options}</select><input type="text" name="note" placeholder="转派原因（可不填）">',
                         secondary=True))
    return f'<div class="card">{"".join(out)}</div>' if out else ""


async def _custody(tickets: Tickets, ticket: dict[str, Any]) -> str:
    custody = (await tickets.custody_of([ticket["id"]])).get(ticket["id"])
    if custody is None:
        return ""
    by = await tickets.grids.worker(custody.worker_id) if custody.worker_id is not None else None
    where = CUSTODY_WHERE[custody.step].format(name=(by or {}).get("name", ""))
    confirmed = "居民已确认" if custody.confirmed else "等居民确认"
    return (f'<div class="card custody"><b>材料在哪</b><div class="row">{_e(where)}（{_e(tickets.fmt(custody.at))}，'
            f'{_e(custody.note)}）<span class="k">{confirmed}</span></div></div>')


def _photos(request: web.Request, ticket: dict[str, Any]) -> str:
    shown = [i for i, m in enumerate(ticket["media"] or []) if m.get("path")]
    if not shown:
        return ""
    query = request.query_string
    imgs = "".join(f'<a href="/t/{ticket["id"]}/photo/{i}?{_e(query)}"><img class="photo" alt="照片{n}" '
                   f'src="/t/{ticket["id"]}/photo/{i}?{_e(query)}"></a>' for n, i in enumerate(shown, 1))
    return f'<div class="card"><b>照片（{len(shown)}张）</b><div>{imgs}</div></div>'


async def _render(request: web.Request, tickets: Tickets, worker: dict[str, Any], ticket: dict[str, Any],
                  flash: str = "", error: bool = False) -> web.Response:
    shown = ticket if tickets.full_view(worker, ticket) else masked(ticket)
    checklist = ""
    if ticket["checklist"]:
        checklist = '<div class="card"><b>材料清单</b><ol>' + "".join(
            f"<li>{_e(c)}</li>" for c in ticket["checklist"]) + "</ol></div>"
    body = PAGE.substitute(
        id=_e(ticket["id"]), label=_e(tickets.label(ticket)), status=_e(STATUS_CN[ticket["status"]]),
        address=_e(shown["address"] or "—"), phone=_e(shown["phone"] or "—"),
        time_window=_e(ticket["time_window"] or "—"), content=_e(shown["content"]),
        accept_due=_e(tickets.fmt(ticket["accept_due_at"])), done_due=_e(tickets.fmt(ticket["done_due_at"])),
        checklist=(await _takeover(tickets, ticket) + checklist + await _custody(tickets, ticket)
                   + _photos(request, ticket)),
        actions=await _actions(request, tickets, worker, ticket), trail=await _trail(tickets, ticket),
        flash=f'<div class="card {"error" if error else "flash"}" role="status">{_e(flash)}</div>' if flash else "",
    )
    return web.Response(text=body, content_type="text/html",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


def _read_photo(form: Any) -> bytes | None:
    photo = form.get("photo")
    if photo is None or getattr(photo, "file", None) is None:
        return None
    content = photo.file.read(MAX_PHOTO_BYTES + 1)
    if len(content) > MAX_PHOTO_BYTES:
        raise TicketError(PHOTO_TOO_BIG)
    if content and image_type(content) is None:
        raise TicketError(NOT_AN_IMAGE)
    return content or None


async def _act(tickets: Tickets, worker: dict[str, Any], ticket: dict[str, Any], form: Any) -> dict[str, Any]:
    """One page action through the service; a photo is kept with the note, or as the custody record."""
    action = str(form.get("action", ""))
    note = str(form.get("note", "") or "").strip()
    photo = _read_photo(form) if action == "note" or action in CUSTODY else None
    if photo is not None:
        note = note or PHOTO_NOTE
    target = None
    if action == "transfer":
        raw = str(form.get("target", "")).strip()
        target = int(raw) if re.fullmatch(r"\d+", raw) else None
    fresh = await tickets.act(ticket["id"], worker, action, note, target=target)
    if photo is not None:  # kept once the action stands, tagged with the custody step it records
        await tickets.save_photo(ticket["id"], worker["id"], photo, step=action if action in CUSTODY else None)
        fresh = await tickets.get(ticket["id"]) or fresh
    return fresh


PageHandler = Callable[[web.Request, Tickets, dict[str, Any], dict[str, Any]], Awaitable[web.StreamResponse]]


def _signed(get_tickets: Getter, handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Every page route starts the same way: check the signed link, then act as that worker on that ticket."""

    async def route(request: web.Request) -> web.StreamResponse:
        tickets = get_tickets(request)
        found = await _authorise(request, tickets)
        if isinstance(found, web.Response):
            return found
        worker, ticket = found
        return await handler(request, tickets, worker, ticket)

    return route


def setup_ticket_pages(app: web.Application, get_tickets: Getter) -> None:
    async def show(request: web.Request, tickets: Tickets, worker: dict[str, Any], ticket: dict[str, Any]
                   ) -> web.Response:
        return await _render(request, tickets, worker, ticket)

    async def act(request: web.Request, tickets: Tickets, worker: dict[str, Any], ticket: dict[str, Any]
                  ) -> web.Response:
        form = await request.post()
        action = str(form.get("action", ""))
        if action not in PAGE_ACTIONS:
            return await _render(request, tickets, worker, ticket, "不支持的操作。", error=True)
        try:
            ticket = await _act(tickets, worker, ticket, form)
        except TicketError as exc:
            ticket = await tickets.get(ticket["id"]) or ticket
            return await _render(request, tickets, worker, ticket, str(exc), error=True)
        return await _render(request, tickets, worker, ticket, DONE_MESSAGES[action])

    async def photo(request: web.Request, tickets: Tickets, _worker: dict[str, Any], ticket: dict[str, Any]
                    ) -> web.StreamResponse:
        media = ticket["media"] or []
        try:
            entry = media[int(request.match_info["n"])]
        except (ValueError, IndexError):
            raise web.HTTPNotFound() from None
        path = Path(str(entry.get("path") or ""))
        root = tickets.media_root().resolve()
        if not entry.get("path") or not path.resolve().is_relative_to(root):
            raise web.HTTPNotFound()
        try:
            content = await asyncio.to_thread(path.read_bytes)
        except OSError:
            raise web.HTTPNotFound() from None
        kind = image_type(content)
        if kind is None:
            raise web.HTTPNotFound()
        return web.Response(body=content, content_type=f"image/{'jpeg' if kind == 'jpg' else kind}",
                            headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})

    app.router.add_get("/t/{id}", _signed(get_tickets, show))
    app.router.add_post("/t/{id}", _signed(get_tickets, act))
    app.router.add_get("/t/{id}/photo/{n}", _signed(get_tickets, photo))
