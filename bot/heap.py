"""Garbage-collector policy for long-lived data: keep the knowledge index out of the collector's walk.

The knowledge snapshot is hundreds of thousands of objects that live until the next FAQ edit. Left in
the collector's generations, every full collection walks them all: a ~90 ms pause every couple of
seconds under load, which alone set the webhook's p99. The service therefore collects once and
``gc.freeze``\\ s what start-up built (the Instagram approach), and does it again after each knowledge
swap — otherwise the first admin edit silently brings the pauses back.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Collect, then move every object that survived into the permanent generation."""
    gc.collect()
    gc.freeze()


def refreeze_after_swap() -> None:
    """After a long-lived structure was replaced: thaw, collect (the old snapshot's cycles go) and
    freeze again. Does nothing in a process that never froze (tests, the CLI): freezing is the
    service's choice, made at start-up."""
    if gc.get_freeze_count() == 0:
        return
    gc.unfreeze()
    freeze_long_lived()
