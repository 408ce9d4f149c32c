"""Follow, unfollow, QR scans, location reports and template receipts: the account's housekeeping."""

from __future__ import annotations

from bot.dispatch import Context, Router
from bot.dispatch.events import (
    LocationReportEvent,
    Response,
    ResidentEvent,
    ScanEvent,
    SubscribeEvent,
    TemplateSendJobFinishEvent,
    UnsubscribeEvent,
)
from bot.services.residents import Residents

WELCOME = (
    "您好，欢迎关注普子岭社区服务号！我是社区小助手，可以帮您：\n"
    "1. 查办事指南：直接问“办养老保险要带啥”\n"
    "2. 我要代办：网格员上门收材料，帮您跑腿\n"
    "3. 报事报修：路灯坏了、垃圾没清都可以说\n"
    "4. 社区活动：义诊、巡防、志愿活动通知\n"
    "有事直接打字或发语音就行，也可以点下方菜单。"
)
SCANNED = "已收到您扫码的信息，谢谢！有事直接打字或发语音问我就行。"


def account_router(residents: Residents) -> Router:
    router = Router("account")

    @router.on(SubscribeEvent)
    async def on_subscribe(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, SubscribeEvent)
        await residents.subscribed(event.openid, event.scene)
        return Response.text(WELCOME, intent="subscribe", action="welcome")

    @router.on(UnsubscribeEvent)
    async def on_unsubscribe(event: ResidentEvent, ctx: Context) -> Response:
        await residents.unsubscribed(event.openid)
        await ctx.clear_state()
        return Response(intent="unsubscribe", action="recorded")

    @router.on(ScanEvent)
    async def on_scan(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, ScanEvent)
        await residents.scanned(event.openid, event.scene)
        return Response.text(SCANNED, intent="scan", action="recorded")

    @router.on(LocationReportEvent)
    async def on_location_report(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, LocationReportEvent)
        await residents.located(event.openid, event.latitude, event.longitude)
        return Response(intent="location_report", action="recorded")

    @router.on(TemplateSendJobFinishEvent)
    async def on_receipt(event: ResidentEvent, ctx: Context) -> Response:
        assert isinstance(event, TemplateSendJobFinishEvent)
        resent = await residents.receipt(event.template_msg_id, event.openid, event.status)
        return Response(intent="template_receipt", action="recorded" if resent is None else "resend")

    return router
