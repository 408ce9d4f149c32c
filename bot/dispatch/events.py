"""The dialogue seam: typed resident events in, a :class:`Response` (zero or more replies) out.

This is the one contract between the WeChat gateway and everything behind it. The gateway turns
signed XML into these frozen dataclasses and turns replies back into XML or customer-service
messages; nothing behind the seam sees XML, signatures or HTTP, and the gateway never sees FAQ
content. Modelled on aiogram's typed updates, but platform-neutral: a test or the terminal chat can
build an event directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Union


@dataclass(frozen=True, slots=True)
class Event:
    """Common fields of everything a resident's WeChat sends us."""

    openid: str
    account: str
    create_time: int
    msg_id: str | None

    @property
    def dedup_key(self) -> str:
        """WeChat's retry identity: MsgId for messages, FromUserName+CreateTime for events."""
        if self.msg_id:
            return f"m:{self.msg_id}"
        return f"e:{self.openid}:{self.create_time}:{self.kind}"

    @property
    def kind(self) -> str:
        return type(self).KIND  # type: ignore[attr-defined,no-any-return]

    @property
    def summary(self) -> str:
        """Short text for the conversation log and the staff screen."""
        return ""


@dataclass(frozen=True, slots=True)
class TextMessage(Event):
    KIND = "text"
    content: str = ""

    @property
    def summary(self) -> str:
        return self.content


@dataclass(frozen=True, slots=True)
class VoiceMessage(Event):
    KIND = "voice"
    media_id: str = ""
    format: str = ""
    recognition: str | None = None

    @property
    def summary(self) -> str:
        return self.recognition or "[语音]"


@dataclass(frozen=True, slots=True)
class ImageMessage(Event):
    KIND = "image"
    media_id: str = ""
    pic_url: str = ""

    @property
    def summary(self) -> str:
        return "[图片]"


@dataclass(frozen=True, slots=True)
class VideoMessage(Event):
    KIND = "video"
    media_id: str = ""
    thumb_media_id: str = ""
    short: bool = False

    @property
    def summary(self) -> str:
        return "[视频]"


@dataclass(frozen=True, slots=True)
class LocationMessage(Event):
    KIND = "location"
    latitude: float = 0.0
    longitude: float = 0.0
    scale: int = 0
    label: str = ""

    @property
    def summary(self) -> str:
        return f"[位置] {self.label}".strip()


@dataclass(frozen=True, slots=True)
class LinkMessage(Event):
    KIND = "link"
    title: str = ""
    description: str = ""
    url: str = ""

    @property
    def summary(self) -> str:
        return f"[链接] {self.title}"


@dataclass(frozen=True, slots=True)
class SubscribeEvent(Event):
    """Follow. ``scene`` is the qrscene_ key without its prefix (e.g. ``grid:12``) or None."""

    KIND = "subscribe"
    scene: str | None = None
    ticket: str | None = None

    @property
    def summary(self) -> str:
        return f"[关注] {self.scene or ''}".strip()


@dataclass(frozen=True, slots=True)
class UnsubscribeEvent(Event):
    KIND = "unsubscribe"

    @property
    def summary(self) -> str:
        return "[取消关注]"


@dataclass(frozen=True, slots=True)
class ScanEvent(Event):
    """A follower scanned a parametric QR code."""

    KIND = "scan"
    scene: str = ""
    ticket: str | None = None

    @property
    def summary(self) -> str:
        return f"[扫码] {self.scene}"


@dataclass(frozen=True, slots=True)
class MenuClickEvent(Event):
    KIND = "click"
    key: str = ""

    @property
    def summary(self) -> str:
        return f"[菜单] {self.key}"


@dataclass(frozen=True, slots=True)
class MenuViewEvent(Event):
    KIND = "view"
    url: str = ""

    @property
    def summary(self) -> str:
        return f"[菜单链接] {self.url}"


@dataclass(frozen=True, slots=True)
class LocationReportEvent(Event):
    """The periodic location report (event LOCATION), not a location the resident chose to send."""

    KIND = "location_report"
    latitude: float = 0.0
    longitude: float = 0.0
    precision: float = 0.0


@dataclass(frozen=True, slots=True)
class TemplateSendJobFinishEvent(Event):
    """Delivery receipt of a template message: status is success / failed:user block / failed: system failed."""

    KIND = "template_receipt"
    template_msg_id: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    """Anything we do not model; kept so the dialogue layer can still answer politely."""

    KIND = "unknown"
    msg_type: str = ""
    event: str = ""


ResidentEvent = Union[
    TextMessage,
    VoiceMessage,
    ImageMessage,
    VideoMessage,
    LocationMessage,
    LinkMessage,
    SubscribeEvent,
    UnsubscribeEvent,
    ScanEvent,
    MenuClickEvent,
    MenuViewEvent,
    LocationReportEvent,
    TemplateSendJobFinishEvent,
    UnknownEvent,
]


# --- replies -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextReply:
    text: str


@dataclass(frozen=True, slots=True)
class NewsReply:
    """One article (WeChat's passive news reply now carries exactly one)."""

    title: str
    description: str
    url: str
    picurl: str = ""


Reply = Union[TextReply, NewsReply]


@dataclass(frozen=True, slots=True)
class Response:
    """What the dialogue layer answers, plus what the conversation log should remember about it."""

    replies: tuple[Reply, ...] = ()
    intent: str | None = None
    item: str | None = None
    action: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, **kw: object) -> "Response":
        return cls(replies=(TextReply(text),), **kw)  # type: ignore[arg-type]


class Dialogue(Protocol):
    """The seam: one resident event in, one Response out. Must not raise for ordinary input."""

    async def handle(self, event: ResidentEvent) -> Response: ...
