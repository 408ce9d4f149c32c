"""Hot reload: changed files are picked up, a broken file is refused and its last good version serves."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from bot.understanding.loader import KnowledgeHolder
from tests.test_understanding_helpers import INTENTS, ITEMS, write_tree

DIBAO = ITEMS["civil.dibao"]


def rewrite(path: Path, text: str) -> None:
    """Write and move the mtime forward, as a later save would (coarse file-system clocks)."""
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    return write_tree(tmp_path)


def test_initial_load(tree: tuple[Path, Path, Path]) -> None:
    holder = KnowledgeHolder(*tree)
    assert sorted(holder.current.items) == sorted(ITEMS) and holder.problems == []
    assert holder.reload_if_changed() is False


def test_a_valid_change_is_served(tree: tuple[Path, Path, Path]) -> None:
    faq, _, _ = tree
    holder = KnowledgeHolder(*tree)
    before = holder.current
    rewrite(faq / "civil.dibao.toml", DIBAO.replace('fee = "免费"', 'fee = "免费（新）"'))
    assert holder.reload_if_changed() is True
    assert holder.current.items["civil.dibao"].fee == "免费（新）"
    assert before.items["civil.dibao"].fee == "免费"  # the old snapshot is untouched
    assert holder.current.version != before.version


def test_a_broken_file_keeps_its_last_good_version(tree: tuple[Path, Path, Path],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    faq, _, _ = tree
    holder = KnowledgeHolder(*tree)
    rewrite(faq / "civil.senior-card.toml", ITEMS["civil.senior-card"].replace('fee = "免费"', 'fee = "x'))
    rewrite(faq / "civil.dibao.toml", DIBAO.replace('fee = "免费"', 'fee = "免费（新）"'))
    with caplog.at_level(logging.ERROR, logger="bot.understanding"):
        assert holder.reload_if_changed() is True
    current = holder.current
    assert "civil.senior-card" in current.items and current.items["civil.senior-card"].fee == "免费"
    assert current.items["civil.dibao"].fee == "免费（新）"  # other files' edits still apply
    assert [p.file.endswith("civil.senior-card.toml") for p in holder.problems] == [True]
    assert any("civil.senior-card.toml" in r.getMessage() for r in caplog.records)
    assert current.match("老年证咋个办").item == "civil.senior-card"

    rewrite(faq / "civil.senior-card.toml", ITEMS["civil.senior-card"].replace('fee = "免费"', 'fee = "免费！"'))
    assert holder.reload_if_changed() is True
    assert holder.current.items["civil.senior-card"].fee == "免费！" and holder.problems == []


def test_a_new_broken_file_is_not_served(tree: tuple[Path, Path, Path]) -> None:
    faq, _, _ = tree
    holder = KnowledgeHolder(*tree)
    rewrite(faq / "civil.extra.toml", "id = ")
    assert holder.reload_if_changed() is True
    assert "civil.extra" not in holder.current.items and len(holder.problems) == 1


def test_duplicate_alias_refuses_the_changed_file_only(tree: tuple[Path, Path, Path]) -> None:
    faq, _, _ = tree
    holder = KnowledgeHolder(*tree)
    text = ITEMS["police.id-card"].replace('"补办身份证"', '"补办身份证", "低保"')
    rewrite(faq / "police.id-card.toml", text)
    holder.reload_if_changed()
    assert holder.current.items["police.id-card"].aliases == ("补办身份证", "身份证丢了")
    assert holder.current.items["civil.dibao"].aliases == ("低保", "吃低保")
    assert [p.field for p in holder.problems] == ["aliases"]


def test_a_deleted_file_is_removed(tree: tuple[Path, Path, Path]) -> None:
    faq, _, _ = tree
    holder = KnowledgeHolder(*tree)
    (faq / "police.id-card.toml").unlink()
    assert holder.reload_if_changed() is True
    assert "police.id-card" not in holder.current.items


def test_intents_reload_and_last_good(tree: tuple[Path, Path, Path]) -> None:
    _, intents, _ = tree
    holder = KnowledgeHolder(*tree)
    assert holder.current.understand("整起低保").match.item == "civil.dibao"
    rewrite(intents / "base.toml", INTENTS + '\n[dialect]\n"整起" = "办"\n')  # [dialect] twice: TOML error
    holder.reload_if_changed()
    assert holder.problems and holder.current.normalize("屋头") == "家里"  # last good intents still serve
    rewrite(intents / "base.toml", INTENTS.replace('"好久" = "多久"', '"好久" = "多久"\n"整起" = "办"'))
    holder.reload_if_changed()
    assert holder.problems == [] and holder.current.normalize("整起") == "办"


def test_a_section_declared_twice_is_logged_with_file_line_and_section(
        tree: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    _, intents, _ = tree
    holder = KnowledgeHolder(*tree)
    text = INTENTS + '\n[dialect]\n"整起" = "办"\n'
    rewrite(intents / "base.toml", text)
    with caplog.at_level(logging.WARNING, logger="bot.understanding"):
        holder.reload_if_changed()
    second = len(text.splitlines()) - 1
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"base.toml:{second}: [dialect] 小节 [dialect] 写了两次" in m for m in logged), logged
    assert any("keeping the last good version" in m for m in logged), logged
    assert holder.current.normalize("屋头") == "家里" and holder.current.normalize("整起") == "整起"


async def test_watch_polls_in_the_background(tree: tuple[Path, Path, Path]) -> None:
    faq, _, _ = tree
    holder = KnowledgeHolder(*tree)
    swaps: list[str] = []
    task = asyncio.create_task(holder.watch(0.02, on_swap=lambda: swaps.append(holder.current.version)))
    try:
        rewrite(faq / "civil.dibao.toml", DIBAO.replace('fee = "免费"', 'fee = "后台"'))
        for _ in range(200):
            if holder.current.items["civil.dibao"].fee == "后台":
                break
            await asyncio.sleep(0.02)
        assert holder.current.items["civil.dibao"].fee == "后台"
        await asyncio.sleep(0.1)  # polls that find nothing changed call no hook
        assert swaps == [holder.current.version]  # once, after the new snapshot was in place
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_a_file_caught_half_written_is_read_once_it_settles(
        tree: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    """An editor that truncates and rewrites in place: the poll that lands in between sees half a file.
    The watch reads a changed file only when the next poll finds it unchanged, so nothing is refused."""
    faq, _, _ = tree
    holder = KnowledgeHolder(*tree)
    path = faq / "civil.dibao.toml"
    whole = DIBAO.replace('fee = "免费"', 'fee = "存好了"')
    with caplog.at_level(logging.WARNING, logger="bot.understanding"):
        rewrite(path, whole[: len(whole) // 2])          # the poll lands mid-save
        assert holder.reload_if_changed(settle=True) is False
        rewrite(path, whole)                              # the save completes
        assert holder.reload_if_changed(settle=True) is False  # changed since the last poll: wait
        assert holder.reload_if_changed(settle=True) is True   # unchanged since: read it
    assert holder.current.items["civil.dibao"].fee == "存好了" and holder.problems == []
    assert not [r for r in caplog.records if "refused" in r.getMessage()]
    # without settling (the CLI, tests), the half-written file is read and refused at once
    rewrite(path, whole[: len(whole) // 2])
    with caplog.at_level(logging.WARNING, logger="bot.understanding"):
        holder.reload_if_changed()
    assert holder.problems and holder.current.items["civil.dibao"].fee == "存好了"
