"""The last router: every event that no feature answered still gets a short, honest reply."""

from __future__ import annotations

from bot.dispatch import Context, Router
from bot.dispatch.events import (
    ImageMessage,
    LinkMessage,
    LocationMessage,
    MenuClickEvent,
    MenuViewEvent,
    Response,
    ResidentEvent,
    TextMessage,
    UnknownEvent,
    VideoMessage,
    VoiceMessage,
)

UNDER_CONSTRUCTION = (
    "您好，智能问答功能正在建设中，暂时还答不了这个问题。\n"
    "急事请拨打社区电话，或在工作日到社区便民服务站咨询。"
)
EMPTY_TEXT = "您好，请直接打字说说您想办什么事，比如“办低保要带啥材料”。"
VOICE_UNCLEAR = "抱歉，这条语音没有听清楚，麻烦您打字再说一遍，谢谢！"
MEDIA_RECEIVED = "已收到您发来的{what}。如需报事报修，请说明是什么问题、在哪里。"
LOCATION_RECEIVED = "已收到您的位置：{label}。"
MENU_SOON = "「{name}」功能正在建设中，敬请期待。有问题可以直接打字问我。"
UNKNOWN = "抱歉，暂时看不懂这种消息。请打字或发语音告诉我您想办什么事。"

MENU_NAMES = {
    "GUIDE": "办事指南",
    "PROXY": "我要代办",
    "REPORT": "报事报修",
    "ACTIVITIES": "社区活动",
    "MY_TICKETS": "我的工单",
}


def fallback_router() -> Router:
    router = Router("fallback")

    @router.on(TextMessage)
    async def on_text(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, TextMessage)
        if not event.content.strip():
            return Response.text(EMPTY_TEXT, intent="empty", action="help")
        return Response.text(UNDER_CONSTRUCTION, intent="unknown", action="fallback")

    @router.on(VoiceMessage)
    async def on_voice(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, VoiceMessage)
        if not event.recognition:
            return Response.text(VOICE_UNCLEAR, intent="voice_unclear", action="ask_type")
        return Response.text(UNDER_CONSTRUCTION, intent="unknown", action="fallback")

    @router.on(ImageMessage, VideoMessage, LinkMessage)
    async def on_media(event: ResidentEvent, ctx: Context) -> Response:
        what = {"image": "图片", "video": "视频", "link": "链接"}[event.kind]
        return Response.text(MEDIA_RECEIVED.format(what=what), intent=event.kind, action="ack")

    @router.on(LocationMessage)
    async def on_location(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, LocationMessage)
        return Response.text(LOCATION_RECEIVED.format(label=event.label or "已记录"), intent="location", action="ack")

    @router.on(MenuClickEvent)
    async def on_click(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, MenuClickEvent)
        name = MENU_NAMES.get(event.key, event.key)
        return Response.text(MENU_SOON.format(name=name), intent=f"menu:{event.key}", action="fallback")

    @router.on(MenuViewEvent)
    async def on_view(event: ResidentEvent, ctx: Context) -> Response:
        return Response(intent="menu_view", action="none")

    @router.on(UnknownEvent)
    async def on_unknown(event: ResidentEvent, ctx: Context) -> Response:
        return Response.text(UNKNOWN, intent="unknown_type", action="fallback")

    return router
