"""Tickets in the conversation: 代办, 报事报修, 转人工, 我的工单, ratings — and the grid workers' commands.

Why the forms live in conversation state under ``state["tickets"]``: a 代办 needs address, phone and a
time window confirmed before anyone walks over, and elderly residents answer one question at a time.
Anything this router does not recognise returns None, so the FAQ router after it still answers; a
resident in the middle of a form can always say "取消".

While a worker holds a 转人工 conversation (``bot.services.takeovers``), this router relays the
resident's messages to them instead of letting the bot answer; the bot's own commands (我的工单, 撤销 12,
订阅 …) still work, and "结束人工" gives the conversation back.

Two routers: :func:`grid_scene_router` goes *first* (before account_router) and only records the grid of
a ``grid:<id>`` poster scan, returning None so the welcome still comes from account_router;
:func:`tickets_router` goes after account_router and before the FAQ router.
"""

from __future__ import annotations

import re
from typing import Any

from bot.dispatch import Context, Router
from bot.dispatch.events import (
    ImageMessage,
    LocationMessage,
    MenuClickEvent,
    Response,
    ResidentEvent,
    ScanEvent,
    SubscribeEvent,
    TextMessage,
    VoiceMessage,
)
from bot.handlers.faq import KnowledgeSource, last_item, proxy_taken
from bot.handlers.notices import is_notice_text
from bot.logs import mask_personal
from bot.services.grids import area_choices, match_area, pick_grid
from bot.services.takeovers import (
    ACK,
    ENDED_BY_RESIDENT,
    RELAY_LOCATION,
    RELAY_VOICE_UNHEARD,
    Live,
)
from bot.services.tickets import (
    CUSTODY,
    CUSTODY_WHERE,
    KINDS,
    RATINGS,
    STATUS_CN,
    Custody,
    TicketError,
    Tickets,
    masked,
)
from bot.understanding import Knowledge, Understanding

# ---- residents ----------------------------------------------------------------------------------
ASK_ITEM = "请问您要代办哪项业务？直接说名称就行，比如“低保”“高龄补贴”。不办了请回复“取消”。"
ITEM_UNKNOWN = "没找到这项业务。请换个说法，比如“低保”“残疾证”；不办了请回复“取消”。"
NOT_PROXY = "「{name}」需要本人到场办理，网格员不能代办。如需帮助请回复“转人工”。"
ASK_ADDRESS = "好的，代办「{name}」，网格员会上门收材料：\n{checklist}\n\n请告诉我上门地址（小区、楼栋、门牌号）。"
ASK_ADDRESS_AGAIN = "好的，代办「{name}」，网格员会上门收材料：\n{checklist}\n\n上门地址还是“{address}”吗？是请回复“是”，不是请直接发新地址。"
ASK_PHONE = "请留一个联系电话，网格员上门前会先打电话。"
ASK_PHONE_AGAIN = "联系电话还是{phone}吗？是请回复“是”，不是请直接发新号码。"
BAD_PHONE = "电话号码好像不对，请发11位手机号或座机号，比如13800001234。"
ADDRESS_MISSING = "还没收到地址。请发上门地址（小区、楼栋、门牌号），比如“普子岭小区3栋2单元501”；不办了请回复“取消”。"
ASK_TIME = "您什么时候方便？请回复数字：\n1 今天上午\n2 今天下午\n3 明天上午\n4 明天下午\n也可以直接说时间，比如“周六上午”。"
ASK_CONFIRM = "请核对：\n业务：{name}\n地址：{address}\n电话：{phone}\n时间：{time}\n没问题请回复“确认”，要改请回复“取消”后重来。"
ASK_AREA = "请问您住在哪个小区、哪一栋？我帮您找到对应的网格员。"
ASK_AREA_LIST = ASK_AREA + "请回复数字或名称：\n{options}\n都不是请回复“0”。"
AREA_AGAIN = "没找到这个小区。请回复上面的数字，或小区、楼栋的名称；都不是请回复“0”。"
AREA_UNKNOWN = "没找到这个小区，工单会先交给社区值班台处理。"
AREA_NONE = "好的，工单会先交给社区值班台安排。"
PROXY_CREATED = "已为您提交代办工单{id}，{name}会按约定时间上门收材料，后面手续一块儿帮您办完。\n进度请回复“我的工单”查看。"
REPORT_START = "请说说是什么问题、在哪里，可以发文字、语音、照片或位置。都发完了请回复“提交”。"
REPORT_MORE = "收到了。还可以继续发照片或位置，都发完了请回复“提交”。"
REPORT_PHOTO = "照片收到了（共{n}张）。都发完了请回复“提交”。"
REPORT_LOCATION = "位置收到了：{label}。都发完了请回复“提交”。"
REPORT_EMPTY = "还没说是什么问题呢，请用文字或语音简单说一下。"
REPORT_CREATED = "已为您提交报事工单{id}，{name}会尽快处理。\n进度请回复“我的工单”查看。"
SIMILAR = "附近已经有人反映过：“{content}”（工单{id}，{status}）。\n是同一个问题吗？是请回复“我也遇到了”，处理好了会通知您；不是请回复“不是”。"
FOLLOWED = "好的，已记下您也遇到了这个问题（工单{id}），处理好了会第一时间通知您。"
HUMAN_CREATED = "已为您转人工（工单{id}），{name}会尽快联系您。进度请回复“我的工单”查看。"
HUMAN_RESUMED = "已重新为您接通网格员{name}（工单{id}），您发的消息会转给TA，TA会在这里回复您。"
HUMAN_ASKED = "居民请求人工服务"
HUMAN_SAID = "：{text}"
HUMAN_ABOUT = "问的是：{name}"
HUMAN_BEFORE = "刚才在问：{name}"
DUPLICATE = "您刚才已经提交过了（工单{id}，{status}），网格员会尽快处理，不用重复提交。"
NOBODY = "社区值班人员"
WORKER_TITLE = "网格员{name}"
FORM_CANCELLED = "好的，已取消。有需要随时找我。"
NO_TICKETS = "您还没有工单。需要网格员帮忙，可以说“我要代办”或“报事报修”。"
MY_TICKETS_HEAD = "您最近的工单："
MY_TICKET_LINE = "{id}号 {label}：{status}（{at}）"
MY_TICKETS_TAIL = "要撤销请回复“撤销 编号”。"
MY_TICKET_CUSTODY = "　材料：{where}（{at}，{note}）{confirm}"
MY_TICKET_CONFIRM = "，请核对后回复“确认 {id}”"
MY_TICKET_CONFIRMED = "，您已确认"
MY_TICKET_WAITING = "　材料：还在您手里，网格员会上门收取（{time}）"
CANCELLED = "工单{id}已撤销。"
RATED = "谢谢您的评价！"
REOPENED = "抱歉没让您满意，工单{id}已重新交给社区处理，会再联系您。"
CONFIRMED = "已确认{what}（工单{id}），谢谢！网格员会收到您的确认。"
MY_GRID = "您属于「{grid}」，网格员：{name}，电话{phone}。"
MY_GRID_NONE = "还不知道您属于哪个网格。"
GRID_SET = "好的，您属于「{grid}」，网格员：{name}。"
GRID_BY_LOCATION = "根据您发的位置，您属于「{grid}」，网格员：{name}。有事可以说“我要代办”或“报事报修”。"
GRID_PICK = "找到几个相近的，请回复数字：\n{options}\n都不是请回复“0”。"

# ---- workers ------------------------------------------------------------------------------------
BOUND = "绑定成功！{name}，以后新工单会通过公众号通知您。回复“我的任务”查看待办工单。"
BIND_FAILED = "绑定码不对或已过期，请向社区管理员重新要一个。"
BIND_LOCKED = "输错次数太多，请稍后再试或联系社区管理员。"
NOT_WORKER = "您还没有绑定网格员身份。请向社区管理员要绑定码，发送“绑定 六位数字”。"
NO_TASKS = "您目前没有待办工单。"
TASKS_HEAD = "您的待办工单（共{total}件，最早的在前）："
TASK_LINE = "{id}号 {label} {status} {address}（{at}，{due}）"
TASKS_TAIL = "回复“接单 编号”“办结 编号 结果”“转派 编号 网格员编号”。"
ACT_OK = {
    "accept": "已接单：工单{id}。居民已收到通知。",
    "start": "工单{id}已开始处理。",
    "note": "已记下备注（工单{id}）。",
    "done": "工单{id}已办结，居民会收到评价邀请。",
    "transfer": "工单{id}已转派给{target}。",
    "reassign": "工单{id}已改派给{target}。",
    "return": "工单{id}已退单，等社区管理员改派。",
    "extend": "工单{id}的延期申请已提交，等社区管理员审批。",
    "extend_ok": "已批准工单{id}延期。",
    "extend_no": "已驳回工单{id}的延期申请。",
    "pickup": "已登记取件（工单{id}），居民会收到确认。",
    "handin": "已登记交件（工单{id}），居民会收到通知。",
    "giveback": "已登记还件（工单{id}），居民会收到确认。",
    "reply": "已发给居民（工单{id}）。如果没能送达，会再告诉您。",
}
LEAVE_ON = "已登记请假，新工单会交给备岗网格员。销假请回复“销假”。"
LEAVE_OFF = "已销假，新工单会照常派给您。"
TICKET_DETAIL = "工单{id}（{label}）{status}\n地址：{address}\n电话：{phone}\n内容：{content}\n{extra}"
DETAIL_CHECKLIST = "材料：{items}"
DETAIL_CUSTODY = "材料交接：{what}（{at}）{confirmed}"
DETAIL_CONFIRMED = {True: "居民已确认", False: "居民未确认"}

PROXY_WORDS = {"代办", "我要代办", "帮我代办", "申请代办", "上门代办", "网格员代办", "请网格员代办", "我要代办业务"}
PROXY_PREFIXES = ("我要代办", "帮我代办", "申请代办", "请网格员代办", "代办")
REPORT_WORDS = {"报事", "报修", "报事报修", "我要报事", "我要报修", "反映问题", "我要反映问题"}
MY_TICKET_WORDS = {"我的工单", "查工单", "工单进度", "查进度", "我的代办"}
CANCEL_FORM = {"取消", "算了", "不办了", "退出", "不用了"}
YES = {"是", "是的", "对", "对的", "好", "好的", "没错", "嗯", "可以"}
SUBMIT = {"提交", "好了", "就这些", "没有了", "发完了", "完了", "确认"}
TIME_CHOICES = {"1": "今天上午", "2": "今天下午", "3": "明天上午", "4": "明天下午"}
WORKER_CMD = re.compile(
    r"^(接单|签收|开始|办结|完成|备注|转派|退单|延期|同意延期|不同意延期|改派|取件|交件|还件|查看|工单|回复)\s*(\d+)\s*(.*)$",
    re.S)
WORKER_ACTIONS = {"接单": "accept", "签收": "accept", "开始": "start", "办结": "done", "完成": "done", "备注": "note",
                  "转派": "transfer", "退单": "return", "延期": "extend", "同意延期": "extend_ok",
                  "不同意延期": "extend_no", "改派": "reassign", "取件": "pickup", "交件": "handin", "还件": "giveback",
                  "回复": "reply"}
RESIDENT_CMD = re.compile(r"^(撤销|取消工单|确认)\s*(\d+)$")
#: Said while a worker holds the conversation: it goes back to the bot.
END_TAKEOVER = {"结束人工", "结束人工服务", "退出人工", "不要人工了", "不用人工了", "结束对话", "不用了", "不需要了"}
CONFIRM_WORDS = {"确认", "确认了", "已确认", "核对无误"}
NO_AREA = {"0", "都不是", "不是", "没有", "不知道", "不晓得"}
PHONE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
MAX_AREA_OPTIONS = 12
RATING_CMD = re.compile(r"^(满意|基本满意|不满意)\s*(\d*)$")
BIND_CMD = re.compile(r"^绑定\s*(\d{6})$")
PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
MAX_BIND_FAILS = 5
FORM_TTL = 3600


def _clean(text: str) -> str:
    return re.sub(r"[\s。！!，,？?~～]+$", "", text.strip())


def grid_scene_router(tickets: Tickets) -> Router:
    """Placed before account_router: a ``grid:<id>`` poster scan puts the resident in that grid."""
    router = Router("grid_scene")

    def is_grid_scene(event: ResidentEvent) -> bool:
        scene = getattr(event, "scene", None)
        return isinstance(scene, str) and scene.startswith("grid:")

    @router.on(SubscribeEvent, ScanEvent, when=is_grid_scene)
    async def on_grid_scan(event: ResidentEvent, ctx: Context) -> Response | None:
        grid_id = str(getattr(event, "scene"))[5:]
        if await tickets.grids.grid(grid_id):
            await tickets.grids.assign(event.openid, grid_id, "scan")
        return None  # account_router still records the scene and answers

    return router


def only_handoff(knowledge: Knowledge, normalized: str) -> bool:
    """True when a message asks for a person and says nothing else ("帮我转人工嘛").

    Such a message leaves a form; "人工湖3栋" (the understanding hears 人工 in it) stays the answer to
    the form's question, and a longer request ("转人工，低保的事") keeps its words in the ticket."""
    handoff = knowledge.intents.intents.get("handoff")
    phrases = {knowledge.normalize(p).replace(" ", "")
               for p in (*(handoff.phrases if handoff else ()), *knowledge.intents.stopwords)}
    rest = normalized.replace(" ", "")
    for phrase in sorted(phrases, key=len, reverse=True):
        if phrase:
            rest = rest.replace(phrase, "")
    return len(rest) <= 1


def tickets_router(tickets: Tickets, knowledge: KnowledgeSource) -> Router:
    """Residents' tickets and workers' commands. ``knowledge`` is the understanding's snapshot holder:
    whatever it recognises as a request for a person (转人工, in any phrasing) opens a 转人工 ticket here,
    so there is one way to reach a person."""
    router = Router("tickets")
    grids = tickets.grids

    # ---- helpers ---------------------------------------------------------------------------

    async def form_of(ctx: Context) -> dict[str, Any]:
        return dict((await ctx.state()).get("tickets") or {})

    async def save_form(ctx: Context, form: dict[str, Any] | None) -> None:
        state = await ctx.state()
        if form:
            state["tickets"] = form
        else:
            state.pop("tickets", None)
        await ctx.save_state(state, ttl_seconds=FORM_TTL)

    async def assignee_name(ticket: dict[str, Any]) -> str:
        """Who will come, as the resident reads it: 网格员张秀英, or the duty desk when the ticket has no
        worker (no grid chosen): "网格员社区值班人员" read as nonsense."""
        worker = await grids.worker(ticket["worker_id"])
        return WORKER_TITLE.format(name=worker["name"]) if worker else NOBODY

    async def grid_of(openid: str) -> str | None:
        row = await grids.resident(openid)
        return row["grid_id"] if row else None

    def handoff_request(text: str) -> Understanding | None:
        """The understanding of ``text`` when it asks for a person, else None (cheap check first:
        the full understanding, with its match, only for the few messages that are hand-offs).
        A phone number left for the call back names no service item, so it is not matched."""
        k = knowledge.current
        if k.smalltalk(k.normalize(text), text) != "handoff":
            return None
        u = k.understand(PHONE_IN_TEXT.sub(" ", text))
        return u if u.intent == "handoff" else None

    # ---- which grid (小区/楼栋 picked in chat) --------------------------------------------------

    async def ask_area(ctx: Context, form: dict[str, Any], intent: str, lead: str = "") -> Response:
        """Ask which 小区/楼栋: numbered when the list is short enough to read on a phone."""
        choices = area_choices(await grids.grids())
        form.update(step="area", asked_area=True)
        if 0 < len(choices) <= MAX_AREA_OPTIONS:
            form["options"] = [gid for _, gid in choices]
            text = ASK_AREA_LIST.format(options="\n".join(f"{i} {area}" for i, (area, _) in enumerate(choices, 1)))
        else:
            form.pop("options", None)
            text = ASK_AREA
        await save_form(ctx, form)
        return Response.text(lead + text, intent=intent, action="ask_area")

    async def area_reply(ctx: Context, form: dict[str, Any], text: str, intent: str
                         ) -> Response | tuple[dict[str, Any] | None, dict[str, Any]]:
        """A reply to :func:`ask_area`: (grid joined, its worker) — (None, {}) for "none of these" or
        after a second miss —, or a Response asking again (shortlist or "not found")."""
        if text in NO_AREA:
            return None, {}
        chosen = pick_grid(text, await grids.grids(), form.get("options"))
        if len(chosen) == 1:
            grid = chosen[0]
            await grids.assign(ctx.openid, grid["id"], "chat")
            worker = await grids.worker(grid["worker_id"]) or {"name": NOBODY}
            return grid, worker
        if len(chosen) > 1:
            form["options"] = [g["id"] for g in chosen[:9]]
            await save_form(ctx, form)
            lines = "\n".join(f"{i} {g['name']}（{'、'.join(g['areas'][:3])}）" for i, g in enumerate(chosen[:9], 1))
            return Response.text(GRID_PICK.format(options=lines), intent=intent, action="pick")
        if form.get("area_missed"):
            return None, {}
        form["area_missed"] = True
        await save_form(ctx, form)
        return Response.text(AREA_AGAIN, intent=intent, action="ask_area")

    def area_done(form: dict[str, Any]) -> None:
        for key in ("options", "area_missed"):
            form.pop(key, None)

    # ---- 代办 ------------------------------------------------------------------------------

    async def start_proxy(ctx: Context, said: str = "") -> Response:
        state = await ctx.state()
        item = tickets.items.find(said) if said else None
        if item is None:
            last = last_item(state, ctx.now)  # the FAQ's context, only while it is fresh
            item = tickets.items.get(last) if isinstance(last, str) else None
            taken = proxy_taken(state)
            if item is not None and taken is not state:  # its offer is taken up: no reminder later
                await ctx.save_state(taken, ttl_seconds=FORM_TTL)
        if item is None:
            await save_form(ctx, {"form": "proxy", "step": "item"})
            return Response.text(ASK_ITEM, intent="ticket:proxy", action="ask_item")
        return await proxy_item_chosen(ctx, item.id)

    async def proxy_item_chosen(ctx: Context, item_id: str) -> Response:
        item = tickets.items.get(item_id)
        assert item is not None
        if not item.proxy:
            await save_form(ctx, None)
            return Response.text(NOT_PROXY.format(name=item.name), intent="ticket:proxy", item=item.id,
                                 action="not_proxy")
        profile = await grids.resident(ctx.openid) or {}
        checklist = "\n".join(f"· {c}" for c in item.checklist)
        form = {"form": "proxy", "step": "address", "item": item.id}
        if profile.get("address"):
            form["known_address"] = profile["address"]
            text = ASK_ADDRESS_AGAIN.format(name=item.name, checklist=checklist, address=profile["address"])
        else:
            text = ASK_ADDRESS.format(name=item.name, checklist=checklist)
        if profile.get("phone"):
            form["known_phone"] = profile["phone"]
        await save_form(ctx, form)
        return Response.text(text, intent="ticket:proxy", item=item.id, action="ask_address")

    async def ask_phone(ctx: Context, form: dict[str, Any], lead: str = "") -> Response:
        form["step"] = "phone"
        await save_form(ctx, form)
        if form.get("known_phone"):
            return Response.text(lead + ASK_PHONE_AGAIN.format(phone=mask_personal(form["known_phone"])),
                                 intent="ticket:proxy", action="ask_phone")
        return Response.text(lead + ASK_PHONE, intent="ticket:proxy", action="ask_phone")

    async def proxy_step(ctx: Context, form: dict[str, Any], text: str) -> Response:
        step = form.get("step")
        if step == "item":
            item = tickets.items.find(text)
            if item is None:
                return Response.text(ITEM_UNKNOWN, intent="ticket:proxy", action="ask_item")
            return await proxy_item_chosen(ctx, item.id)
        if step == "address":
            address = form.get("known_address") if text in YES and form.get("known_address") else text
            if len(address or "") < 2 or address in YES:  # 好的 to "请告诉我上门地址" is not an address
                return Response.text(ADDRESS_MISSING, intent="ticket:proxy", action="ask_address")
            form["address"] = address
            if await grid_of(ctx.openid) is None:  # no grid yet: the address may name it, else ask
                all_grids = await grids.grids()
                found = match_area(address, all_grids)
                if len(found) == 1:
                    await grids.assign(ctx.openid, found[0]["id"], "address")
                elif all_grids:
                    return await ask_area(ctx, form, "ticket:proxy")
            return await ask_phone(ctx, form)
        if step == "area":
            picked = await area_reply(ctx, form, text, "ticket:proxy")
            if isinstance(picked, Response):
                return picked
            grid, worker = picked
            area_done(form)
            lead = GRID_SET.format(grid=grid["name"], name=worker["name"]) if grid else AREA_NONE
            return await ask_phone(ctx, form, lead + "\n")
        if step == "phone":
            phone = form.get("known_phone") if text in YES and form.get("known_phone") else re.sub(r"[\s-]", "", text)
            if not phone or not PHONE.match(phone):
                return Response.text(BAD_PHONE, intent="ticket:proxy", action="ask_phone")
            form.update(step="time", phone=phone)
            await save_form(ctx, form)
            return Response.text(ASK_TIME, intent="ticket:proxy", action="ask_time")
        if step == "time":
            if text in YES:  # 好的 says nothing about when
                return Response.text(ASK_TIME, intent="ticket:proxy", action="ask_time")
            form.update(step="confirm", time=TIME_CHOICES.get(text, text))
            await save_form(ctx, form)
            item = tickets.items.get(form["item"])
            return Response.text(ASK_CONFIRM.format(name=item.name if item else form["item"], address=form["address"],
                                                    phone=form["phone"], time=form["time"]),
                                 intent="ticket:proxy", action="ask_confirm")
        if step == "confirm":
            if text not in SUBMIT and text not in YES:
                item = tickets.items.get(form["item"])
                return Response.text(ASK_CONFIRM.format(name=item.name if item else form["item"], address=form["address"], phone=form["phone"],
                                                        time=form["time"]), intent="ticket:proxy", action="ask_confirm")
            await grids.remember_contact(ctx.openid, form["address"], form["phone"])
            grid_id = await grid_of(ctx.openid)  # None: the duty desk (the resident chose none)
            item = tickets.items.get(form["item"])
            ticket, created = await tickets.create("proxy", ctx.openid, grid_id=grid_id, item=item,
                                                   content=f"代办{item.name if item else ''}", address=form["address"],
                                                   phone=form["phone"], time_window=form["time"])
            await save_form(ctx, None)
            if not created:
                return Response.text(DUPLICATE.format(id=ticket["id"], status=STATUS_CN[ticket["status"]]),
                                     intent="ticket:proxy", action="duplicate")
            return Response.text(PROXY_CREATED.format(id=ticket["id"], name=await assignee_name(ticket)),
                                 intent="ticket:proxy", item=ticket["item_id"], action="created",
                                 meta={"ticket": str(ticket["id"])})
        await save_form(ctx, None)
        return Response.text(FORM_CANCELLED, intent="ticket:proxy", action="reset")

    # ---- 报事 ------------------------------------------------------------------------------

    async def start_report(ctx: Context, said: str = "") -> Response:
        form: dict[str, Any] = {"form": "report", "step": "collect", "text": [], "media": []}
        if said:
            form["text"].append(said)
        await save_form(ctx, form)
        return Response.text(REPORT_MORE if said else REPORT_START, intent="ticket:report", action="collect")

    async def submit_report(ctx: Context, form: dict[str, Any], force: bool = False) -> Response:
        content = "；".join(form.get("text") or [])
        if not content and not form.get("media"):
            return Response.text(REPORT_EMPTY, intent="ticket:report", action="collect")
        grid_id = form.get("grid") or await grid_of(ctx.openid)
        if grid_id is None and form.get("lat") is not None:
            found = await grids.grid_at(form["lat"], form["lon"])
            grid_id = found["id"] if found else None
        if grid_id is None and not form.get("asked_area") and await grids.grids():
            found = match_area(content, await grids.grids())
            if len(found) == 1:
                grid_id = found[0]["id"]
            else:
                return await ask_area(ctx, form, "ticket:report")
        if not force:
            similar = await tickets.similar_open_report(ctx.openid, grid_id, content, form.get("lat"), form.get("lon"))
            if similar is not None:
                form.update(step="similar", similar=similar["id"], grid=grid_id)
                await save_form(ctx, form)
                return Response.text(SIMILAR.format(content=similar["content"][:40], id=similar["id"],
                                                    status=STATUS_CN[similar["status"]]),
                                     intent="ticket:report", action="offer_follow")
        media = [{"type": "image", "media_id": m} for m in form.get("media") or []]
        if form.get("label"):
            content = f"{content}（位置：{form['label']}）" if content else f"位置：{form['label']}"
        ticket, created = await tickets.create("report", ctx.openid, grid_id=grid_id, content=content, media=media,
                                               latitude=form.get("lat"), longitude=form.get("lon"))
        await save_form(ctx, None)
        if not created:
            return Response.text(DUPLICATE.format(id=ticket["id"], status=STATUS_CN[ticket["status"]]),
                                 intent="ticket:report", action="duplicate")
        return Response.text(REPORT_CREATED.format(id=ticket["id"], name=await assignee_name(ticket)),
                             intent="ticket:report", action="created", meta={"ticket": str(ticket["id"])})

    async def report_step(ctx: Context, form: dict[str, Any], text: str) -> Response:
        step = form.get("step")
        if step == "similar":
            if text in ("我也遇到了", "我也是", "是", "是的", "对", "一样"):
                await tickets.follow(ctx.openid, int(form["similar"]))
                await save_form(ctx, None)
                return Response.text(FOLLOWED.format(id=form["similar"]), intent="ticket:report", action="followed")
            return await submit_report(ctx, form, force=True)
        if step == "area":
            picked = await area_reply(ctx, form, text, "ticket:report")
            if isinstance(picked, Response):
                return picked
            area_done(form)
            if picked[0] is not None:
                form["grid"] = picked[0]["id"]
            return await submit_report(ctx, form)
        if text in SUBMIT:
            return await submit_report(ctx, form)
        form.setdefault("text", []).append(text)
        await save_form(ctx, form)
        return Response.text(REPORT_MORE, intent="ticket:report", action="collect")

    # ---- 转人工 ----------------------------------------------------------------------------

    async def human(ctx: Context, text: str, u: Understanding) -> Response:
        """A 转人工 ticket, routed like the others, carrying what the resident said and the FAQ item
        they asked about (in this message or just before), plus the phone and address they last gave."""
        resumed = await tickets.takeovers.resume(ctx.openid, text)
        if resumed is not None:  # the 转人工 ticket is still open: the same worker takes the conversation back
            return Response.text(HUMAN_RESUMED.format(name=resumed.worker["name"], id=resumed.ticket["id"]),
                                 intent="ticket:human", action="resumed", meta={"ticket": str(resumed.ticket["id"])})
        k = knowledge.current
        content = HUMAN_ASKED + ("" if only_handoff(k, u.normalized) else HUMAN_SAID.format(text=text))
        about = u.match.item if u.match.action == "answer" else None
        before = last_item(await ctx.state(), ctx.now)
        context = [HUMAN_ABOUT.format(name=k.items[about].name)] if about in k.items else []
        if before in k.items and before != about:
            context.append(HUMAN_BEFORE.format(name=k.items[before].name))
        if context:
            content += "（" + "；".join(context) + "）"
        profile = await grids.resident(ctx.openid) or {}
        typed = PHONE_IN_TEXT.search(text)
        ticket, created = await tickets.create(
            "human", ctx.openid, grid_id=profile.get("grid_id"), content=content,
            phone=typed.group(1) if typed else profile.get("phone"), address=profile.get("address"), dedup_key="")
        item = about or before
        if not created:
            return Response.text(DUPLICATE.format(id=ticket["id"], status=STATUS_CN[ticket["status"]]),
                                 intent="ticket:human", item=item, action="duplicate")
        return Response.text(HUMAN_CREATED.format(id=ticket["id"], name=await assignee_name(ticket)),
                             intent="ticket:human", item=item, action="created", meta={"ticket": str(ticket["id"])})

    # ---- residents' queries ----------------------------------------------------------------

    async def my_tickets(ctx: Context) -> Response:
        rows = await tickets.of_resident(ctx.openid, 5)
        if not rows:
            return Response.text(NO_TICKETS, intent="ticket:mine", action="empty")
        custody = await tickets.custody_of([t["id"] for t in rows if t["kind"] == "proxy"])
        lines = [MY_TICKETS_HEAD]
        for t in rows:
            lines.append(MY_TICKET_LINE.format(id=t["id"], label=tickets.label(t), status=STATUS_CN[t["status"]],
                                               at=tickets.fmt(t["updated_at"])))
            where = await documents_line(t, custody.get(t["id"]))
            if where:
                lines.append(where)
        lines.append(MY_TICKETS_TAIL)
        return Response.text("\n".join(lines), intent="ticket:mine", action="list")

    async def documents_line(ticket: dict[str, Any], custody: Custody | None) -> str:
        """Where a 代办's documents are ("nobody has to wonder where their 户口簿 is")."""
        if custody is None:
            if ticket["kind"] == "proxy" and ticket["status"] in ("pending", "accepted"):
                return MY_TICKET_WAITING.format(time=ticket["time_window"] or "按约定时间")
            return ""
        by = await grids.worker(custody.worker_id) if custody.worker_id is not None else None
        confirm = MY_TICKET_CONFIRMED if custody.confirmed else MY_TICKET_CONFIRM.format(id=ticket["id"])
        return MY_TICKET_CUSTODY.format(where=CUSTODY_WHERE[custody.step].format(name=(by or {}).get("name", "")),
                                        at=tickets.fmt(custody.at), note=custody.note, confirm=confirm)

    async def my_grid(ctx: Context) -> Response:
        row = await grids.resident(ctx.openid)
        if row and row.get("grid_id"):
            grid = await grids.grid(row["grid_id"])
            if grid:
                worker = await grids.worker(grid["worker_id"]) or {"name": NOBODY, "phone": "—"}
                return Response.text(MY_GRID.format(grid=grid["name"], name=worker["name"], phone=worker["phone"]),
                                     intent="ticket:grid", action="show")
        return await ask_area(ctx, {"form": "grid"}, "ticket:grid", MY_GRID_NONE)

    async def grid_step(ctx: Context, form: dict[str, Any], text: str) -> Response:
        picked = await area_reply(ctx, form, text, "ticket:grid")
        if isinstance(picked, Response):
            return picked
        grid, worker = picked
        await save_form(ctx, None)
        if grid is None:
            return Response.text(AREA_UNKNOWN, intent="ticket:grid", action="unknown")
        return Response.text(GRID_SET.format(grid=grid["name"], name=worker["name"]), intent="ticket:grid",
                             action="set")

    # ---- workers ---------------------------------------------------------------------------

    async def bind(ctx: Context, code: str) -> Response:
        state = await ctx.state()
        fails = int((state.get("tickets") or {}).get("bind_fails", 0))
        if fails >= MAX_BIND_FAILS:
            return Response.text(BIND_LOCKED, intent="ticket:bind", action="locked")
        worker = await grids.bind(code, ctx.openid)
        if worker is None:
            await save_form(ctx, {**(state.get("tickets") or {}), "bind_fails": fails + 1})
            return Response.text(BIND_FAILED, intent="ticket:bind", action="failed")
        return Response.text(BOUND.format(name=worker["name"]), intent="ticket:bind", action="bound")

    async def my_tasks(worker: dict[str, Any]) -> Response:
        rows, total = await tickets.my_tasks(worker["id"], 10)
        if not rows:
            return Response.text(NO_TASKS, intent="ticket:tasks", action="empty")
        lines = [TASKS_HEAD.format(total=total)]
        for t in rows:
            due = f"限{tickets.fmt(t['accept_due_at'] if t['status'] == 'pending' else t['done_due_at'])}前"
            lines.append(TASK_LINE.format(id=t["id"], label=tickets.label(t), status=STATUS_CN[t["status"]],
                                          address=t["address"] or "", at=tickets.fmt(t["created_at"]), due=due))
        lines.append(TASKS_TAIL)
        return Response.text("\n".join(lines), intent="ticket:tasks", action="list")

    async def worker_command(worker: dict[str, Any], verb: str, ticket_id: int, rest: str) -> Response:
        if verb in ("查看", "工单"):
            ticket = await tickets.get(ticket_id)
            if ticket is None or not await tickets.can_see(worker, ticket):
                return Response.text(f"没有找到工单{ticket_id}，或不归您处理。", intent="ticket:view", action="refused")
            extra = [DETAIL_CHECKLIST.format(items="；".join(ticket["checklist"]))] if ticket["checklist"] else []
            custody = (await tickets.custody_of([ticket_id])).get(ticket_id)
            if custody is not None:
                extra.append(DETAIL_CUSTODY.format(what=CUSTODY[custody.step], at=tickets.fmt(custody.at),
                                                   confirmed=DETAIL_CONFIRMED[custody.confirmed]))
            shown = ticket if tickets.full_view(worker, ticket) else masked(ticket)
            return Response.text(TICKET_DETAIL.format(id=ticket_id, label=tickets.label(ticket),
                                                      status=STATUS_CN[ticket["status"]],
                                                      address=shown["address"] or "—", phone=shown["phone"] or "—",
                                                      content=shown["content"], extra="\n".join(extra)),
                                 intent="ticket:view", action="show")
        action = WORKER_ACTIONS[verb]
        target: int | None = None
        hours: int | None = None
        note = rest.strip()
        if action in ("transfer", "reassign"):
            m = re.match(r"^(\d+)\s*(.*)$", note, re.S)
            if m:
                target, note = int(m.group(1)), m.group(2).strip()
        if action == "extend":
            m = re.match(r"^(\d+)\s*(.*)$", note, re.S)
            if m:
                hours, note = int(m.group(1)), m.group(2).strip()
        try:
            await tickets.act(ticket_id, worker, action, note, target=target, hours=hours)
        except TicketError as exc:
            return Response.text(str(exc), intent=f"ticket:{action}", action="refused")
        name = ""
        if target is not None:
            other = await grids.worker(target)
            name = other["name"] if other else str(target)
        return Response.text(ACT_OK[action].format(id=ticket_id, target=name), intent=f"ticket:{action}", action="ok")

    async def confirm(openid: str, ticket_id: int | None) -> Response:
        try:
            ticket, custody = await tickets.confirm(openid, ticket_id)
        except TicketError as exc:
            return Response.text(str(exc), intent="ticket:confirm", action="refused")
        return Response.text(CONFIRMED.format(what=CUSTODY[custody.step], id=ticket["id"]), intent="ticket:confirm",
                             action="ok", meta={"ticket": str(ticket["id"]), "step": custody.step})

    # ---- 转人工 taken over by a worker ------------------------------------------------------

    async def relay(live: Live, text: str, media_id: str | None = None) -> Response | None:
        """The resident's message goes to the worker; the resident hears "已转给网格员X" now and then,
        not once per message. None when the takeover ended meanwhile (the bot answers)."""
        ack = await tickets.takeovers.relay(live, text, media_id)
        if ack is None:
            return None
        meta = {"ticket": str(live.ticket["id"])}
        if ack:
            return Response.text(ACK.format(name=live.worker["name"]), intent="ticket:relay", action="ack", meta=meta)
        return Response(intent="ticket:relay", action="relayed", meta=meta)

    async def end_takeover(openid: str) -> Response:
        ended = await tickets.takeovers.end_by_resident(openid)
        name = ended[0].worker["name"] if ended else NOBODY
        return Response.text(ENDED_BY_RESIDENT.format(name=name), intent="ticket:relay", action="ended")

    async def taken_over(event: ResidentEvent, text: str, raw: str) -> Response | None:
        """While a worker holds the conversation: "结束人工" ends it, the bot's commands still work
        (None for those: 订阅/报名 go on to the notices router, "满意 12" to the rating below), and
        everything else (``raw``, as the resident typed it) is relayed. None too when no takeover."""
        live = await tickets.takeovers.current(event.openid)
        if live is None:
            return None
        if text in END_TAKEOVER:
            return await end_takeover(event.openid)
        if is_notice_text(event) or ((m := RATING_CMD.match(text)) and m.group(2)):
            return None
        return await relay(live, raw)

    # ---- routes ----------------------------------------------------------------------------

    @router.on(MenuClickEvent)
    async def on_click(event: ResidentEvent, ctx: Context) -> Response | None:
        assert isinstance(event, MenuClickEvent)
        if event.key == "PROXY":
            return await start_proxy(ctx)
        if event.key == "REPORT":
            return await start_report(ctx)
        if event.key == "MY_TICKETS":
            worker = await grids.worker_by_openid(event.openid)
            return await my_tasks(worker) if worker else await my_tickets(ctx)
        return None

    @router.on(TextMessage, VoiceMessage)
    async def on_text(event: ResidentEvent, ctx: Context) -> Response | None:
        raw = event.content if isinstance(event, TextMessage) else (event.recognition or "")
        text = _clean(raw)
        if not text:
            if isinstance(event, VoiceMessage) and (live := await tickets.takeovers.current(event.openid)):
                return await relay(live, RELAY_VOICE_UNHEARD)
            return None
        # Commands first: they work in the middle of a form too.
        if m := BIND_CMD.match(text):
            return await bind(ctx, m.group(1))
        if m := WORKER_CMD.match(text):
            worker = await grids.worker_by_openid(event.openid)
            if worker is None:
                return Response.text(NOT_WORKER, intent="ticket:worker", action="refused")
            rest = m.group(3)
            if m.group(1) == "回复":  # the worker's words as typed, closing punctuation and all
                rest = (WORKER_CMD.match(raw.strip()) or m).group(3)
            return await worker_command(worker, m.group(1), int(m.group(2)), rest)
        if text in ("我的任务", "待办工单", "我的待办"):
            worker = await grids.worker_by_openid(event.openid)
            if worker is None:
                return Response.text(NOT_WORKER, intent="ticket:worker", action="refused")
            return await my_tasks(worker)
        if text in ("请假", "销假"):
            worker = await grids.worker_by_openid(event.openid)
            if worker is None:
                return None
            await grids.set_leave(worker["id"], text == "请假")
            return Response.text(LEAVE_ON if text == "请假" else LEAVE_OFF, intent="ticket:leave", action="set")
        if text in MY_TICKET_WORDS:
            return await my_tickets(ctx)
        if text in ("我的网格", "我的网格员", "网格员是谁", "选择网格"):
            return await my_grid(ctx)
        if m := RESIDENT_CMD.match(text):
            ticket_id = int(m.group(2))
            if m.group(1) == "确认":
                return await confirm(event.openid, ticket_id)
            try:
                await tickets.cancel(event.openid, ticket_id)
            except TicketError as exc:
                return Response.text(str(exc), intent="ticket:cancel", action="refused")
            return Response.text(CANCELLED.format(id=ticket_id), intent="ticket:cancel", action="ok")
        if (taken := await taken_over(event, text, raw.strip())) is not None:
            return taken
        form = await form_of(ctx)
        kind = form.get("form")
        if m := RATING_CMD.match(text):
            if not kind or m.group(2):
                try:
                    t = await tickets.rate(event.openid, m.group(1), int(m.group(2)) if m.group(2) else None)
                except TicketError as exc:
                    if m.group(2):
                        return Response.text(str(exc), intent="ticket:rate", action="refused")
                else:
                    if t["status"] == "pending":
                        return Response.text(REOPENED.format(id=t["id"]), intent="ticket:rate", action="reopened")
                    return Response.text(RATED, intent="ticket:rate", action="rated")
        if kind and text in CANCEL_FORM:
            await save_form(ctx, {k: v for k, v in form.items() if k == "bind_fails"})
            return Response.text(FORM_CANCELLED, intent=f"ticket:{kind}", action="cancelled")
        if not kind and text in CONFIRM_WORDS and await tickets.awaiting_confirmation(event.openid):
            return await confirm(event.openid, None)
        if text in PROXY_WORDS:
            return await start_proxy(ctx)
        for prefix in PROXY_PREFIXES:
            if text.startswith(prefix) and len(text) - len(prefix) <= 10:
                return await start_proxy(ctx, text[len(prefix):])
        if text in REPORT_WORDS:
            return await start_report(ctx)
        for word in ("报修", "报事"):
            if text.startswith(word) and len(text) > len(word) + 1:
                return await start_report(ctx, text[len(word):].lstrip("：: "))
        if (u := handoff_request(text)) is not None and (not kind or only_handoff(knowledge.current, u.normalized)):
            if kind:  # a bare 转人工 leaves the form; anything more is the answer to the form's question
                await save_form(ctx, {k: v for k, v in form.items() if k == "bind_fails"})
            return await human(ctx, text, u)
        if kind == "proxy":
            return await proxy_step(ctx, form, text)
        if kind == "report":
            return await report_step(ctx, form, text)
        if kind == "grid":
            return await grid_step(ctx, form, text)
        return None

    @router.on(ImageMessage)
    async def on_image(event: ResidentEvent, ctx: Context) -> Response | None:
        assert isinstance(event, ImageMessage)
        if (live := await tickets.takeovers.current(event.openid)) is not None:
            return await relay(live, "", media_id=event.media_id)
        form = await form_of(ctx)
        if form.get("form") != "report":
            return None
        form.setdefault("media", []).append(event.media_id)
        await save_form(ctx, form)
        return Response.text(REPORT_PHOTO.format(n=len(form["media"])), intent="ticket:report", action="photo")

    @router.on(LocationMessage)
    async def on_location(event: ResidentEvent, ctx: Context) -> Response | None:
        assert isinstance(event, LocationMessage)
        if (live := await tickets.takeovers.current(event.openid)) is not None:
            return await relay(live, RELAY_LOCATION.format(label=event.label or f"{event.latitude},{event.longitude}"))
        form = await form_of(ctx)
        grid = await grids.grid_at(event.latitude, event.longitude)
        if form.get("form") == "report":
            form.update(lat=event.latitude, lon=event.longitude, label=event.label)
            if grid:
                form["grid"] = grid["id"]
            await save_form(ctx, form)
            return Response.text(REPORT_LOCATION.format(label=event.label or "已记录"), intent="ticket:report",
                                 action="location")
        if grid is None:
            return None
        await grids.assign(event.openid, grid["id"], "location")
        worker = await grids.worker(grid["worker_id"]) or {"name": NOBODY}
        return Response.text(GRID_BY_LOCATION.format(grid=grid["name"], name=worker["name"]),
                             intent="ticket:grid", action="location")

    return router


__all__ = ["grid_scene_router", "tickets_router", "KINDS", "RATINGS"]
