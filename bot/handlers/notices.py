"""Notices in chat: 订阅 / 退订 / 我的订阅, 报名 / 取消报名, 社区活动 (menu ACTIVITIES) and 公示 questions.

Only short, command-like texts are taken here ("订阅 义诊", "退订 全部", "报名", "社区开支", "最近有什么
工程"); everything else goes on to the FAQ. The only conversation state kept is the numbered list of
activities offered for 报名, under the ``notices`` key of the shared state dict.
"""

from __future__ import annotations

import re
from typing import Any

from bot.dispatch import Context, Router
from bot.dispatch.events import MenuClickEvent, Response, ResidentEvent, TextMessage, VoiceMessage
from bot.services.announcements import Announcements
from bot.services.notices import NoticeService, when_text

SUBSCRIBE_HELP = "想收哪类通知？请回复「订阅」加类别，比如「订阅 义诊」。\n可选类别：{categories}"
SUBSCRIBED = "已订阅：{categories}。有新通知会推送给您。\n回复「退订 {first}」可随时取消。"
UNSUBSCRIBED = "已退订：{categories}，以后不再给您推送这类通知。\n回复「订阅 {first}」可重新订阅。"
UNSUBSCRIBED_ALL = "已退订全部活动通知，以后不再推送。\n停水停电等紧急通知仍会发给您。回复「我的订阅」可查看。"
URGENT_ALWAYS = "「{categories}」属于紧急通知，关系到大家生活，会发给所在网格的所有居民，不能退订。"
UNKNOWN_CATEGORY = "没有找到「{words}」这类通知。\n可选类别：{categories}"
MY_SUBSCRIPTIONS = "您现在会收到：{categories}。\n回复「订阅 类别」增加，「退订 类别」取消，「退订 全部」全部取消。"
MY_SUBSCRIPTIONS_NONE = "您还没有订阅活动通知（紧急通知如停水停电仍会发给您）。\n回复「订阅 义诊」这样的话就能订阅。"
NO_SIGNUP = "现在没有需要报名的活动。回复「社区活动」可查看近期活动。"
SIGNUP_CHOOSE = "现在可以报名的活动有：\n{lines}\n请回复「报名」加序号，比如「报名 1」。"
SIGNUP_BAD_NUMBER = "没有第 {n} 个活动。请回复「报名」看可报名的活动。"
SIGNED_UP = "报名成功！「{title}」\n时间：{when}\n地点：{place}\n请准时参加。不能来请回复「取消报名」。"
WAITING = "「{title}」名额已满，已为您登记候补。有人取消时会按顺序补上，并通知您。"
ALREADY_CONFIRMED = "您已经报过名了：「{title}」。不能来请回复「取消报名」。"
ALREADY_WAITING = "您已在「{title}」的候补名单上，有名额会通知您。"
NOTHING_TO_CANCEL = "您没有报名的活动。"
SIGNUP_CANCELLED = "已取消报名：「{title}」。"
PROMOTED = "好消息：「{title}」有人取消，您已从候补转为正式报名。\n时间：{when}\n地点：{place}"
ACTIVITIES = "近期社区活动：\n{lines}\n\n{subs}"
NO_ACTIVITIES = "近期没有安排社区活动。\n{subs}"
ACTIVITIES_SUBS = "您订阅了：{categories}。回复「订阅 类别」或「退订 类别」可修改。"
ACTIVITIES_NO_SUBS = "回复「订阅 义诊」这样的话，有活动时会通知您。"
ANNOUNCEMENTS = "{kind}（最近{n}条）：\n{lines}"
NO_ANNOUNCEMENTS = "暂时没有{kind}。可以到社区便民服务站公示栏查看。"

ALL_WORDS = ("全部", "所有", "全部通知", "所有通知")
MY_SUBS_WORDS = ("我的订阅", "订阅了什么", "我订阅了什么", "查看订阅", "订阅列表")
ACTIVITY_WORDS = ("社区活动", "有什么活动", "最近有什么活动", "近期活动", "活动通知", "最近活动", "活动")
ANNOUNCEMENT_WORDS: dict[str, tuple[str, ...]] = {
    "社区开支": ("社区开支", "开支", "财务公示", "账目", "花了多少钱"),
    "工程项目": ("工程项目", "工程"),
    "好人好事": ("好人好事",),
}
# "最近有什么工程" asks for 公示; "楼下工程太吵了" is a complaint for the tickets feature.
ASKING = ("最近", "什么", "哪些", "公示", "查", "看看", "有没有", "多少")
SHORT = 16  # texts longer than this are questions for the FAQ, not commands

SUBSCRIBE_RE = re.compile(r"^(?:我要)?订阅\s*(.*)$")
UNSUBSCRIBE_RE = re.compile(r"^(?:退订|取消订阅|不要再发|别再发)\s*(.*)$")
SIGNUP_RE = re.compile(r"^(?:我要|我想)?报名\s*(?:第)?\s*(\d+)?\s*(?:个)?$")
CANCEL_SIGNUP_RE = re.compile(r"^取消报名\s*(\d+)?$")
STATE_KEY = "notices"


def _text(event: ResidentEvent) -> str:
    if isinstance(event, TextMessage):
        raw = event.content
    elif isinstance(event, VoiceMessage):
        raw = event.recognition or ""
    else:
        return ""
    return re.sub(r"[。！!？?，,\s]+$", "", raw.strip()).replace("　", " ")


def _announcement_kind(text: str) -> str | None:
    """"社区开支" → 社区开支; "最近有什么工程" → 工程项目; "公示" → "" (all kinds); else None."""
    if len(text) > SHORT:
        return None
    asking = text in ("公示", "看公示", "查公示") or any(h in text for h in ASKING)
    for kind, words in ANNOUNCEMENT_WORDS.items():
        if text in words or (asking and any(w in text for w in words)):
            return kind
    return "" if asking and "公示" in text else None


def is_notice_text(event: ResidentEvent) -> bool:
    text = _text(event)
    if not text or len(text) > SHORT:
        return False
    return bool(
        SUBSCRIBE_RE.match(text) or UNSUBSCRIBE_RE.match(text) or SIGNUP_RE.match(text)
        or CANCEL_SIGNUP_RE.match(text) or text in MY_SUBS_WORDS or text in ACTIVITY_WORDS
        or _announcement_kind(text) is not None
    )


def notices_router(notices: NoticeService, announcements: Announcements) -> Router:
    router = Router("notices")
    categories_text = "、".join(c for c in notices.settings.categories if c not in notices.settings.urgent)

    async def subs_line(openid: str) -> str:
        chosen = [c for c in await notices.receiving(openid) if c not in notices.settings.urgent]
        return ACTIVITIES_SUBS.format(categories="、".join(chosen)) if chosen else ACTIVITIES_NO_SUBS

    async def activities(openid: str) -> Response:
        upcoming = await notices.upcoming(5)
        subs = await subs_line(openid)
        if not upcoming:
            return Response.text(NO_ACTIVITIES.format(subs=subs), intent="notices", action="activities")
        lines = []
        for i, n in enumerate(upcoming, 1):
            when = when_text(n, notices.settings)
            places = f"（名额 {n['capacity']}，回复「报名」）" if n["capacity"] else ""
            lines.append(f"{i}. {n['title']}" + (f"\n   {when}" if when else "")
                         + (f" {n['place']}" if n["place"] else "") + places)
        return Response.text(ACTIVITIES.format(lines="\n".join(lines), subs=subs), intent="notices",
                             action="activities")

    async def subscribe(openid: str, words: str) -> Response:
        if not words:
            return Response.text(SUBSCRIBE_HELP.format(categories=categories_text), intent="notices",
                                 action="subscribe_help")
        found = notices.match_categories(words)
        if not found:
            return Response.text(UNKNOWN_CATEGORY.format(words=words, categories=categories_text),
                                 intent="notices", action="subscribe_unknown")
        await notices.subscribe(openid, found)
        return Response.text(SUBSCRIBED.format(categories="、".join(found), first=found[0]), intent="notices",
                             action="subscribe")

    async def unsubscribe(openid: str, words: str) -> Response:
        if not words or words in ALL_WORDS:
            await notices.unsubscribe(openid, None)
            return Response.text(UNSUBSCRIBED_ALL, intent="notices", action="unsubscribe_all")
        found = notices.match_categories(words)
        if not found:
            return Response.text(UNKNOWN_CATEGORY.format(words=words, categories=categories_text),
                                 intent="notices", action="unsubscribe_unknown")
        allowed = [c for c in found if c not in notices.settings.urgent]
        if not allowed:
            return Response.text(URGENT_ALWAYS.format(categories="、".join(found)), intent="notices",
                                 action="unsubscribe_urgent")
        await notices.unsubscribe(openid, allowed)
        return Response.text(UNSUBSCRIBED.format(categories="、".join(allowed), first=allowed[0]),
                             intent="notices", action="unsubscribe")

    async def my_subscriptions(openid: str) -> Response:
        chosen = [c for c in await notices.receiving(openid) if c not in notices.settings.urgent]
        if not chosen:
            return Response.text(MY_SUBSCRIPTIONS_NONE, intent="notices", action="my_subscriptions")
        return Response.text(MY_SUBSCRIPTIONS.format(categories="、".join(chosen)), intent="notices",
                             action="my_subscriptions")

    def details(n: dict[str, Any]) -> dict[str, str]:
        return {"title": n["title"], "when": when_text(n, notices.settings) or "见通知",
                "place": n["place"] or "见通知"}

    async def signup(ctx: Context, number: int | None) -> Response:
        open_ = await notices.open_signups()
        if not open_:
            return Response.text(NO_SIGNUP, intent="notices", action="signup_none")
        if number is None and len(open_) > 1:
            lines = "\n".join(f"{i}. {n['title']}（{when_text(n, notices.settings) or '时间见通知'}）"
                              for i, n in enumerate(open_, 1))
            state = await ctx.state()
            state[STATE_KEY] = {**state.get(STATE_KEY, {}), "signup_choices": [n["id"] for n in open_]}
            await ctx.save_state(state)
            return Response.text(SIGNUP_CHOOSE.format(lines=lines), intent="notices", action="signup_choose")
        if number is not None:
            state = await ctx.state()
            ids = state.get(STATE_KEY, {}).get("signup_choices") or [n["id"] for n in open_]
            by_id = {n["id"]: n for n in open_}
            if not 1 <= number <= len(ids) or ids[number - 1] not in by_id:
                return Response.text(SIGNUP_BAD_NUMBER.format(n=number), intent="notices", action="signup_bad")
            chosen = by_id[ids[number - 1]]
        else:
            chosen = open_[0]
        result = await notices.signup(chosen["id"], ctx.openid)
        template = {"confirmed": SIGNED_UP, "waiting": WAITING, "already_confirmed": ALREADY_CONFIRMED,
                    "already_waiting": ALREADY_WAITING}[result]
        return Response.text(template.format(**details(chosen)), intent="notices", item=chosen["id"],
                             action=f"signup_{result}")

    async def cancel_signup(ctx: Context) -> Response:
        for n in await notices.open_signups():
            withdrawn, promoted = await notices.cancel_signup(n["id"], ctx.openid)
            if withdrawn is None:
                continue
            if promoted:
                await notices.tell(promoted, PROMOTED.format(**details(n)), f"promoted:{n['id']}:{promoted}")
            return Response.text(SIGNUP_CANCELLED.format(title=n["title"]), intent="notices", item=n["id"],
                                 action="signup_cancel")
        return Response.text(NOTHING_TO_CANCEL, intent="notices", action="signup_cancel_none")

    async def public(kind: str) -> Response:
        rows = await announcements.latest(kind or None, 3)
        label = kind or "公示"
        if not rows:
            return Response.text(NO_ANNOUNCEMENTS.format(kind=label), intent="announcements", action="none")
        lines = []
        for a in rows:
            line = f"· {a['title']}（{a['published_on']}）"
            if a["summary"]:
                line += f"\n  {a['summary']}"
            if a["link"]:
                line += f"\n  详情：{a['link']}"
            lines.append(line)
        return Response.text(ANNOUNCEMENTS.format(kind=label, n=len(rows), lines="\n".join(lines)),
                             intent="announcements", item=kind or None, action="list")

    @router.on(MenuClickEvent, when=lambda e: isinstance(e, MenuClickEvent) and e.key == "ACTIVITIES")
    async def on_menu(event: ResidentEvent, ctx: Context) -> Response:
        return await activities(event.openid)

    @router.on(TextMessage, VoiceMessage, when=is_notice_text)
    async def on_text(event: ResidentEvent, ctx: Context) -> Response | None:
        text = _text(event)
        if text in MY_SUBS_WORDS:
            return await my_subscriptions(event.openid)
        if m := UNSUBSCRIBE_RE.match(text):
            return await unsubscribe(event.openid, m.group(1).strip())
        if m := SUBSCRIBE_RE.match(text):
            return await subscribe(event.openid, m.group(1).strip())
        if CANCEL_SIGNUP_RE.match(text):
            return await cancel_signup(ctx)
        if m := SIGNUP_RE.match(text):
            return await signup(ctx, int(m.group(1)) if m.group(1) else None)
        if text in ACTIVITY_WORDS:
            return await activities(event.openid)
        kind = _announcement_kind(text)
        if kind is not None:
            return await public(kind)
        return None

    return router
