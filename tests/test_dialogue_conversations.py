"""Conversation tests as data (tests/data/conversations.toml), each run through the real webhook."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import make_config
from tests.dialogue_helpers import FakeClock, Turn, as_list, click, say, send, voice
from tests.gateway_helpers import running_app

DATA = Path(__file__).parent / "data" / "conversations.toml"
CONVERSATIONS: list[dict[str, Any]] = tomllib.loads(DATA.read_text(encoding="utf-8"))["conversation"]


OPTION = re.compile(r"^(\d+)\. (.+)$", re.M)


def options_shown(turn: Turn) -> list[str]:
    """Item names of a clarify list, in the order shown."""
    return [name for _, name in OPTION.findall(turn.text)] if turn.action == "clarify" else []


def check_references(turn: Turn, expected: dict[str, Any], names: dict[str, str], options: list[str],
                     previous: Turn | None, where: str) -> None:
    """``picks`` and ``same_item``: expectations about earlier turns rather than fixed ids."""
    if "picks" in expected:
        number = int(expected["picks"])
        assert 0 < number <= len(options), f"{where}: no option {number} in {options}"
        assert turn.item and names[turn.item] == options[number - 1], f"{where}: {turn.item} is not {options}"
    if expected.get("same_item"):
        assert previous is not None and turn.item and turn.item == previous.item, f"{where}: {turn.item}"


def check(turn: Turn, expected: dict[str, Any], where: str) -> None:
    for field in ("intent", "item", "action"):
        if field in expected:
            want = expected[field] or None
            assert getattr(turn, field) == want, f"{where}: {field} {getattr(turn, field)!r} != {want!r}\n{turn.text}"
    for piece in as_list(expected.get("contains")):
        assert piece in turn.text, f"{where}: reply lacks {piece!r}:\n{turn.text}"
    for piece in as_list(expected.get("excludes")):
        assert piece not in turn.text, f"{where}: reply has {piece!r}:\n{turn.text}"


def test_conversation_file_is_well_formed() -> None:
    """A typo in the data file must fail loudly, not silently skip a check."""
    known = {"say", "voice", "voice_unrecognised", "click", "intent", "item", "action", "contains", "excludes",
             "advance", "picks", "same_item"}
    assert CONVERSATIONS
    for conversation in CONVERSATIONS:
        assert conversation.get("name") and conversation.get("turn"), conversation
        for turn in conversation["turn"]:
            assert set(turn) <= known, (conversation["name"], set(turn) - known)
            assert sum(k in turn for k in ("say", "voice", "click")) == 1, (conversation["name"], turn)


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c["name"] for c in CONVERSATIONS])
async def test_conversation(db_url: str, http: aiohttp.ClientSession, conversation: dict[str, Any]) -> None:
    clock = FakeClock()
    openid = "oConv" + str(abs(hash(conversation["name"])) % 10**8)
    async with running_app(make_config(db_url), http, clock=clock) as (_, emu, services):
        names = {ident: item.name for ident, item in services.knowledge.current.items.items()}
        options: list[str] = []
        previous: Turn | None = None
        for number, turn in enumerate(conversation["turn"], 1):
            clock.advance(60 * float(turn.get("advance", 0)))
            if "say" in turn:
                got = await say(emu, services, clock, openid, turn["say"])
            elif "voice" in turn:
                recognition = None if turn.get("voice_unrecognised") else turn["voice"]
                got = await send(emu, services, clock, voice(emu, openid, recognition))
            else:
                got = await send(emu, services, clock, click(emu, openid, turn["click"], clock))
            where = f"{conversation['name']} / turn {number}"
            check(got, turn, where)
            check_references(got, turn, names, options, previous, where)
            options = options_shown(got) or options
            previous = got
