"""Accuracy on the development set, scored by the strict rule of tests/data/README.md.

Only dev.tsv is used here; holdout.tsv is never used for tuning or in tests (see the README).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.understanding.evaluate import Report, evaluate, format_report, is_correct, read_cases
from bot.understanding.loader import load_knowledge
from bot.understanding.model import MatchResult

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "dev.tsv"

#: Targets from the issue.
ACCURACY_TARGET = 0.95
FALLBACK_PRECISION_TARGET = 0.90
#: What the matcher reaches today; a change that drops below this is a regression.
ACCURACY_FLOOR = 0.93  # dev is at 94.7 % today (1,425 lines; line-parity halves 94.4 % / 95.1 %)


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


@pytest.mark.xfail(strict=True, reason="dev accuracy is below the 95% target; see the report in tests/data/README.md")
def test_dev_meets_the_accuracy_target(report: Report) -> None:
    assert report.accuracy >= ACCURACY_TARGET, format_report(report, "dev", show_misses=False)


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
