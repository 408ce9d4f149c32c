"""XML ⇄ typed events and replies, signatures and AES (safe mode) for the WeChat message protocol.

Why not wechatpy's parser: it uses xmltodict on untrusted input (DTDs allowed) and compares
signatures with ``==``. Here XML is parsed by expat with DTDs refused (no entity expansion,
no billion laughs), every signature is compared with :func:`hmac.compare_digest`, and CDATA output
escapes ``]]>``. The AES block cipher itself is wechatpy's ``PrpCrypto``, which is correct.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Mapping
from xml.parsers import expat
from wechatpy.crypto import PrpCrypto

from bot.dispatch.events import (
    Event,
    ImageMessage,
    LinkMessage,
    LocationMessage,
    LocationReportEvent,
    MenuClickEvent,
    MenuViewEvent,
    NewsReply,
    Reply,
    ResidentEvent,
    ScanEvent,
    SubscribeEvent,
    TemplateSendJobFinishEvent,
    TextMessage,
    TextReply,
    UnknownEvent,
    UnsubscribeEvent,
    VideoMessage,
    VoiceMessage,
)
from bot.wechat.faces import named_faces


class CodecError(Exception):
    """The body is not a WeChat message we can read (malformed, hostile or undecryptable)."""


class SignatureError(Exception):
    """A signature did not match."""


# --- signatures ----------------------------------------------------------------------------------


def sign(*parts: str) -> str:
    """WeChat's signature: SHA1 of the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(expected_parts: tuple[str, ...], given: str) -> None:
    """Constant-time comparison; raises :class:`SignatureError` on mismatch."""
    if not given or not hmac.compare_digest(sign(*expected_parts), given.lower()):
        raise SignatureError("bad signature")


# --- XML -----------------------------------------------------------------------------------------


class _Forbidden(Exception):
    pass


def _forbid(*_args: object) -> None:
    raise _Forbidden()


def parse_fields(body: bytes | str) -> dict[str, str]:
    """Flat ``<xml><Tag>value</Tag>…</xml>`` into a dict, refusing DTDs and entity declarations.

    Why expat directly: defusedxml's ElementTree runs the pure-Python parser (about 130 µs for a
    WeChat message, the single largest cost of a request); this does the same refusals — any
    DOCTYPE, entity declaration or external reference aborts before anything is expanded — in a
    fraction of that. Undeclared entities (``&lol;`` without a DTD) are expat errors.
    """
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    parser.buffer_text = True
    fields: dict[str, str] = {}
    stack: list[str] = []
    text: list[str] = []
    roots: list[str] = []

    def start(name: str, _attrs: object) -> None:
        stack.append(name)
        if len(stack) == 1:
            roots.append(name)
        elif len(stack) == 2:
            text.clear()

    def end(name: str) -> None:
        if len(stack) == 2:
            value = "".join(text)
            fields[name] = value if name == "Content" else value.strip()
        elif len(stack) == 3:  # nested (e.g. SendPicsInfo): keep the parent tag, ignore the tree
            fields.setdefault(stack[1], "")
        stack.pop()

    def chars(data: str) -> None:
        if len(stack) == 2:
            text.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except _Forbidden:
        raise CodecError("forbidden XML construct (DTD or entity)") from None
    except (expat.ExpatError, ValueError, TypeError) as exc:
        raise CodecError(f"malformed XML: {exc}") from None
    if roots != ["xml"]:
        raise CodecError("root element is not <xml>")
    return fields


def _int(fields: Mapping[str, str], key: str, default: int = 0) -> int:
    try:
        return int(fields.get(key, "") or default)
    except ValueError:
        raise CodecError(f"{key} is not a number") from None


def _float(fields: Mapping[str, str], key: str) -> float:
    try:
        return float(fields.get(key, "") or 0.0)
    except ValueError:
        raise CodecError(f"{key} is not a number") from None


def _base(fields: Mapping[str, str]) -> dict[str, object]:
    openid = fields.get("FromUserName", "")
    if not openid:
        raise CodecError("FromUserName missing")
    return {
        "openid": openid,
        "account": fields.get("ToUserName", ""),
        "create_time": _int(fields, "CreateTime"),
        "msg_id": fields.get("MsgId") or None,
    }


def _event(fields: Mapping[str, str], base: dict[str, object]) -> ResidentEvent:
    name = fields.get("Event", "").upper()
    key = fields.get("EventKey", "")
    base = {**base, "msg_id": None}
    if name == "SUBSCRIBE":
        scene = key[len("qrscene_"):] if key.startswith("qrscene_") else None
        return SubscribeEvent(**base, scene=scene or None, ticket=fields.get("Ticket") or None)  # type: ignore[arg-type]
    if name == "UNSUBSCRIBE":
        return UnsubscribeEvent(**base)  # type: ignore[arg-type]
    if name == "SCAN":
        return ScanEvent(**base, scene=key, ticket=fields.get("Ticket") or None)  # type: ignore[arg-type]
    if name == "CLICK":
        return MenuClickEvent(**base, key=key)  # type: ignore[arg-type]
    if name == "VIEW":
        return MenuViewEvent(**base, url=key)  # type: ignore[arg-type]
    if name == "LOCATION":
        return LocationReportEvent(
            **base,  # type: ignore[arg-type]
            latitude=_float(fields, "Latitude"),
            longitude=_float(fields, "Longitude"),
            precision=_float(fields, "Precision"),
        )
    if name == "TEMPLATESENDJOBFINISH":
        return TemplateSendJobFinishEvent(
            **base,  # type: ignore[arg-type]
            template_msg_id=fields.get("MsgID", "") or fields.get("MsgId", ""),
            status=fields.get("Status", ""),
        )
    return UnknownEvent(**base, msg_type="event", event=name)  # type: ignore[arg-type]


def _message(fields: Mapping[str, str], base: dict[str, object]) -> ResidentEvent:
    msg_type = fields.get("MsgType", "")
    if msg_type == "text":
        return TextMessage(**base, content=named_faces(fields.get("Content", "")))  # type: ignore[arg-type]
    if msg_type == "voice":
        recognition = (fields.get("Recognition") or "").strip() or None
        return VoiceMessage(
            **base, media_id=fields.get("MediaId", ""), format=fields.get("Format", ""), recognition=recognition  # type: ignore[arg-type]
        )
    if msg_type == "image":
        return ImageMessage(**base, media_id=fields.get("MediaId", ""), pic_url=fields.get("PicUrl", ""))  # type: ignore[arg-type]
    if msg_type in ("video", "shortvideo"):
        return VideoMessage(
            **base,  # type: ignore[arg-type]
            media_id=fields.get("MediaId", ""),
            thumb_media_id=fields.get("ThumbMediaId", ""),
            short=msg_type == "shortvideo",
        )
    if msg_type == "location":
        return LocationMessage(
            **base,  # type: ignore[arg-type]
            latitude=_float(fields, "Location_X"),
            longitude=_float(fields, "Location_Y"),
            scale=_int(fields, "Scale"),
            label=fields.get("Label", ""),
        )
    if msg_type == "link":
        return LinkMessage(
            **base,  # type: ignore[arg-type]
            title=fields.get("Title", ""),
            description=fields.get("Description", ""),
            url=fields.get("Url", ""),
        )
    return UnknownEvent(**base, msg_type=msg_type, event="")  # type: ignore[arg-type]


def to_event(fields: Mapping[str, str]) -> ResidentEvent:
    """A typed event from parsed fields. Unknown types become :class:`UnknownEvent`, never an error."""
    base = _base(fields)
    if fields.get("MsgType", "") == "event":
        return _event(fields, base)
    return _message(fields, base)


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_reply(reply: Reply, to_user: str, from_user: str, now: int | None = None) -> str:
    """A passive reply as XML. Handlers never build XML; only this function does."""
    ts = int(time.time()) if now is None else now
    head = (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{ts}</CreateTime>"
    )
    if isinstance(reply, TextReply):
        return head + f"<MsgType><![CDATA[text]]></MsgType><Content>{cdata(reply.text)}</Content></xml>"
    if isinstance(reply, NewsReply):
        return head + (
            "<MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount><Articles><item>"
            f"<Title>{cdata(reply.title)}</Title><Description>{cdata(reply.description)}</Description>"
            f"<PicUrl>{cdata(reply.picurl)}</PicUrl><Url>{cdata(reply.url)}</Url></item></Articles></xml>"
        )
    raise TypeError(f"cannot render {type(reply).__name__}")


# --- safe mode (AES) -----------------------------------------------------------------------------


class Cipher:
    """AES-CBC envelope of safe and compatible mode, bound to one AppID."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=")
        except (binascii.Error, ValueError):
            raise ValueError("encoding_aes_key is not valid base64") from None
        if len(key) != 32:
            raise ValueError("encoding_aes_key must decode to 32 bytes")
        self._key = key
        self._token = token
        self._app_id = app_id

    def decrypt(self, encrypt: str) -> str:
        try:
            return str(PrpCrypto(self._key).decrypt(encrypt, self._app_id))
        except Exception:  # noqa: BLE001 - any failure means the same thing to the sender
            raise CodecError("cannot decrypt message") from None

    def encrypt_envelope(self, xml: str, nonce: str, timestamp: str) -> str:
        encrypt = PrpCrypto(self._key).encrypt(xml, self._app_id)
        encrypt_text = encrypt.decode() if isinstance(encrypt, bytes) else str(encrypt)
        signature = sign(self._token, timestamp, nonce, encrypt_text)
        return (
            f"<xml><Encrypt>{cdata(encrypt_text)}</Encrypt><MsgSignature>{cdata(signature)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
        )


def event_fields(event: Event) -> dict[str, str]:
    """Inverse of :func:`to_event` for the sandbox's WeChat-server emulator and tests."""
    base = {
        "ToUserName": event.account,
        "FromUserName": event.openid,
        "CreateTime": str(event.create_time),
    }
    e = event
    if isinstance(e, TextMessage):
        return {**base, "MsgType": "text", "Content": e.content, "MsgId": e.msg_id or ""}
    if isinstance(e, VoiceMessage):
        out = {**base, "MsgType": "voice", "MediaId": e.media_id, "Format": e.format or "amr", "MsgId": e.msg_id or ""}
        if e.recognition is not None:
            out["Recognition"] = e.recognition
        return out
    if isinstance(e, ImageMessage):
        return {**base, "MsgType": "image", "PicUrl": e.pic_url, "MediaId": e.media_id, "MsgId": e.msg_id or ""}
    if isinstance(e, VideoMessage):
        return {**base, "MsgType": "shortvideo" if e.short else "video", "MediaId": e.media_id,
                "ThumbMediaId": e.thumb_media_id, "MsgId": e.msg_id or ""}
    if isinstance(e, LocationMessage):
        return {**base, "MsgType": "location", "Location_X": str(e.latitude), "Location_Y": str(e.longitude),
                "Scale": str(e.scale), "Label": e.label, "MsgId": e.msg_id or ""}
    if isinstance(e, LinkMessage):
        return {**base, "MsgType": "link", "Title": e.title, "Description": e.description, "Url": e.url,
                "MsgId": e.msg_id or ""}
    ev = {**base, "MsgType": "event"}
    if isinstance(e, SubscribeEvent):
        out = {**ev, "Event": "subscribe"}
        if e.scene:
            out["EventKey"] = "qrscene_" + e.scene
            out["Ticket"] = e.ticket or "sandbox-ticket"
        return out
    if isinstance(e, UnsubscribeEvent):
        return {**ev, "Event": "unsubscribe"}
    if isinstance(e, ScanEvent):
        return {**ev, "Event": "SCAN", "EventKey": e.scene, "Ticket": e.ticket or "sandbox-ticket"}
    if isinstance(e, MenuClickEvent):
        return {**ev, "Event": "CLICK", "EventKey": e.key}
    if isinstance(e, MenuViewEvent):
        return {**ev, "Event": "VIEW", "EventKey": e.url}
    if isinstance(e, LocationReportEvent):
        return {**ev, "Event": "LOCATION", "Latitude": str(e.latitude), "Longitude": str(e.longitude),
                "Precision": str(e.precision)}
    if isinstance(e, TemplateSendJobFinishEvent):
        return {**ev, "Event": "TEMPLATESENDJOBFINISH", "MsgID": e.template_msg_id, "Status": e.status}
    raise TypeError(f"cannot encode {type(e).__name__}")


def fields_to_xml(fields: Mapping[str, str]) -> str:
    """Plain WeChat-style XML from a flat dict (numbers bare, strings in CDATA, like the real server)."""
    parts = []
    for key, value in fields.items():
        if key in ("CreateTime", "MsgId", "MsgID") and value.isdigit():
            parts.append(f"<{key}>{value}</{key}>")
        else:
            parts.append(f"<{key}>{cdata(value)}</{key}>")
    return "<xml>" + "".join(parts) + "</xml>"
