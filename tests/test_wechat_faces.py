"""WeChat's codes for the classic faces (``bot.wechat.faces``), named at the edge: the codec hands the
rest of the bot ``[微笑]``, never ``/::)``. Unit tests, the contract with the understanding (every name
the edge writes is one it reads), and the whole path over real HTTP through the mock WeChat server."""

from __future__ import annotations

import aiohttp
import pytest

from bot.handlers.faq import THANKS
from bot.understanding.emoticons import read_emoticons
from bot.wechat.faces import FACES, named_faces
from tests.conftest import make_config
from tests.gateway_helpers import running_app

OPENID = "oResidentFaces01"


@pytest.mark.parametrize(("text", "named"), [
    ("/::)低保咋个申请", "[微笑]低保咋个申请"),
    ("/:strong/:strong", "[强][强]"),
    ("/::-O", "[哈欠]"),          # longest code first: one face, not /::- and a letter O
    ("低保/::B", "低保[色]"),
    ("低保咋个申请", "低保咋个申请"),
    ("a/:b", "a/:b"),            # no face's code
])
def test_codes_are_named(text: str, named: str) -> None:
    assert named_faces(text) == named


def test_every_code_is_named_as_the_understanding_reads_it() -> None:
    for code, name in FACES:
        assert named_faces(code) == f"[{name}]", code
        assert read_emoticons(named_faces(code)) == name, code  # the contract: a name, read whole


async def test_a_face_code_over_the_wire(db_url: str, http: aiohttp.ClientSession) -> None:
    """What WeChat sends for a thumbs-up alone is thanked; a code before a question leaves it intact."""
    async with running_app(make_config(db_url), http) as (_, emu, _services):
        thanks = await emu.send(emu.text(OPENID, "/:strong"))
        assert thanks.status == 200 and thanks.text == THANKS
        asked = await emu.send(emu.text(OPENID, "/::)请问低保咋个申请"))
        assert asked.status == 200 and "最低生活保障" in asked.text and "微笑" not in asked.text
