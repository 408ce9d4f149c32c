"""The items' names and anchors (``bot.understanding.names.ItemNames``), on the real data.

One object holds them for the matcher and its three rule modules, so these tests pin what every rule
relies on: whole names are read at their longest, a generic word names each of its items, and anchors
are what a question must hold before an item is answered. The questions are written for this test.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from bot.understanding.names import ItemNames



@pytest.fixture(scope="module")
def names(knowledge: Knowledge) -> ItemNames:
    return knowledge.matcher.names


def _ids(knowledge: Knowledge, positions: frozenset[int]) -> set[str]:
    return {knowledge.matcher.index.ids[p] for p in positions}


def test_whole_names_are_read_at_their_longest(knowledge: Knowledge, names: ItemNames) -> None:
    # 居住证明 (the residence proof) holds 居住证 (the permit): the longer name is the one read
    found = list(names.whole_names("我要开居住证明"))
    assert len(found) == 1
    start, end, owners = found[0]
    assert "我要开居住证明"[start:end].endswith("居住证明")
    assert "civil.residence-proof" in _ids(knowledge, owners)
    assert "police.residence-permit" not in _ids(knowledge, owners)


def test_a_generic_word_names_each_of_its_items(knowledge: Knowledge, names: ItemNames) -> None:
    position = knowledge.matcher.index.position
    for ident in ("civil.senior-card", "veterans.preferential-card"):
        assert names.names_item("优待证在哪办", position[ident])
    assert not names.names_item("优待证在哪办", position["civil.dibao"])


def test_anchors_need_a_word_of_the_item(knowledge: Knowledge, names: ItemNames) -> None:
    norm = knowledge.normalize
    assert names.anchored(norm("吃低保要啥子材料"), ["civil.dibao"])
    assert not names.anchored(norm("今天天气好不好"), ["civil.dibao"])
    # one set of grams tested against several items: any of them counts
    assert names.anchored(norm("失业金咋个领"), ["civil.dibao", "hrss.unemployment-benefit"])

