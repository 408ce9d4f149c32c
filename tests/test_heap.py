"""The service's collector policy: long-lived data frozen at start-up, and again after a knowledge swap."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot.heap import freeze_long_lived, refreeze_after_swap


class _Node:
    """A tracked object that can sit in a reference cycle (only the collector frees those)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_refreeze_does_nothing_in_a_process_that_never_froze(thawed: None) -> None:
    refreeze_after_swap()
    assert gc.get_freeze_count() == 0


def test_refreeze_takes_in_the_new_snapshot_and_lets_the_old_one_go(thawed: None) -> None:
    old = _Node()
    gone = weakref.ref(old)
    freeze_long_lived()  # start-up: the old snapshot is frozen
    before = gc.get_freeze_count()
    del old  # the swap drops the old snapshot (a cycle: frozen, the collector would never free it)
    new = [[_Node()] for _ in range(1000)]  # the new snapshot, built after start-up
    refreeze_after_swap()
    assert gone() is None
    assert gc.get_freeze_count() >= before + len(new)
