"""Accuracy on the development set, scored by the strict rule of tests/data/README.md, and on the
k-fold self-check over the FAQ files' own questions (the measure dev cannot be over-fitted to).

Only dev.tsv is used here; the hold-outs are never used for tuning or in tests (see the README).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.understanding.evaluate import Report, evaluate, format_report, is_correct, kfold, read_cases
from bot.understanding.loader import load_knowledge
from bot.understanding.model import MatchResult

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "dev.tsv"

#: Targets from the issue.
ACCURACY_TARGET = 0.95
FALLBACK_PRECISION_TARGET = 0.90
#: What the matcher reaches today; a change that drops below this is a regression.
#: Dev is at 95.4 % (2,694 lines, session 7; 97.1 % before): its author labels about fifty messages
#: with two needs as ambiguous between them (a clarify), and since session 7 such a message is answered
#: about one need, offering the other (bot/understanding/needs.py says why: independent writers label
#: the main need).
ACCURACY_FLOOR = 0.95
#: The 5-fold self-check over the FAQ questions: 94.3 % today (2,259 questions, session 8; the likelihood
#: view added 0.5 point; session 5's close-sibling clarify cost 0.1: FAQ questions are written for one
#: item even when they are vague).
KFOLD_FLOOR = 0.94


@pytest.fixture(scope="module")
def report() -> Report:
    if not DEV.exists():
        pytest.skip("tests/data/dev.tsv not written yet")
    knowledge, holder = load_knowledge(ROOT / "faq", ROOT / "intents")
    assert knowledge.items, holder.problems
    return evaluate(read_cases(DEV), knowledge.match)


def test_dev_no_regression(report: Report) -> None:
    assert report.accuracy >= ACCURACY_FLOOR, format_report(report, "dev")
    assert report.fallback_precision >= FALLBACK_PRECISION_TARGET, format_report(report, "dev")


def test_dev_meets_the_accuracy_target(report: Report) -> None:
    """Dev reached the target in round 5; the hold-outs are what the target is about (README)."""
    assert report.accuracy >= ACCURACY_TARGET, format_report(report, "dev", show_misses=False)


def test_kfold_self_check_no_regression() -> None:
    knowledge, holder = load_knowledge(ROOT / "faq", ROOT / "intents")
    assert knowledge.items, holder.problems
    folded = kfold(list(knowledge.items.values()), knowledge.intents, folds=5)
    assert folded.accuracy >= KFOLD_FLOOR, format_report(folded, "5-fold", show_misses=False)


def result(action: str, item: str | None = None, *candidates: str) -> MatchResult:
    return MatchResult(action, item, tuple(candidates), 50.0)  # type: ignore[arg-type]


def test_scoring_rule_is_strict() -> None:
    assert is_correct(("a",), result("answer", "a", "a"))
    assert not is_correct(("a",), result("clarify", None, "a", "b"))
    assert is_correct(("a", "b"), result("clarify", None, "b", "c", "a"))
    assert not is_correct(("a", "b"), result("answer", "a", "a"))
    assert not is_correct(("a", "b"), result("clarify", None, "a", "c"))
    assert is_correct((), result("fallback"))
    assert not is_correct((), result("clarify", None, "a", "b"))
