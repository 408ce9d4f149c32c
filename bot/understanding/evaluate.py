"""Score the matcher against a labelled TSV (``question<TAB>expected``).

The scoring rule (also in ``tests/data/README.md``), deliberately strict:

* expected one id → correct only when ``action == "answer"`` with that id;
* expected several ids (``a|b``) → correct only when ``action == "clarify"`` and the offered
  candidates include *all* of them (answering one of them is a miss: the resident may well have meant
  the other, and we would have answered the wrong thing with confidence);
* expected ``none`` → correct only when ``action == "fallback"``.

Fallback precision: of the questions we fell back on, the share labelled ``none``. Fallback recall: of
the ``none`` questions, the share we fell back on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from bot.understanding.model import MatchResult

NONE = "none"


@dataclass(frozen=True)
class Case:
    line: int
    question: str
    expected: tuple[str, ...]  # empty tuple for none


@dataclass(frozen=True)
class Outcome:
    case: Case
    result: MatchResult
    correct: bool


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    def _share(self, hits: int, of: int) -> float:
        return hits / of if of else 1.0

    @property
    def accuracy(self) -> float:
        return self._share(sum(o.correct for o in self.outcomes), self.total)

    @property
    def clarify_rate(self) -> float:
        return self._share(sum(o.result.action == "clarify" for o in self.outcomes), self.total)

    @property
    def fallback_precision(self) -> float:
        fell = [o for o in self.outcomes if o.result.action == "fallback"]
        return self._share(sum(not o.case.expected for o in fell), len(fell))

    @property
    def fallback_recall(self) -> float:
        nones = [o for o in self.outcomes if not o.case.expected]
        return self._share(sum(o.result.action == "fallback" for o in nones), len(nones))

    @property
    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.correct]


def is_correct(expected: tuple[str, ...], result: MatchResult) -> bool:
    """The strict rule above."""
    if not expected:
        return result.action == "fallback"
    if len(expected) == 1:
        return result.action == "answer" and result.item == expected[0]
    return result.action == "clarify" and set(expected) <= set(result.candidates)


def read_cases(path: Path) -> list[Case]:
    """Parse the TSV; blank lines and ``#`` comments are skipped, a header line is tolerated."""
    cases: list[Case] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        question, sep, expected = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}:{number}: expected question<TAB>expected")
        expected = expected.strip()
        if number == 1 and question.strip().lower() == "question":
            continue
        ids = () if expected.lower() == NONE else tuple(e.strip() for e in expected.split("|") if e.strip())
        cases.append(Case(number, question, ids))
    return cases


def evaluate(cases: Iterable[Case], match: Callable[[str], MatchResult]) -> Report:
    report = Report()
    for case in cases:
        result = match(case.question)
        report.outcomes.append(Outcome(case, result, is_correct(case.expected, result)))
    return report


def format_report(report: Report, name: str, show_misses: bool = True) -> str:
    lines = [
        f"{name}: {report.total} questions",
        f"  accuracy            {report.accuracy:6.1%}",
        f"  clarify rate        {report.clarify_rate:6.1%}",
        f"  fallback precision  {report.fallback_precision:6.1%}",
        f"  fallback recall     {report.fallback_recall:6.1%}",
    ]
    if show_misses and report.misses:
        lines.append(f"  misses ({len(report.misses)}):")
        for outcome in report.misses:
            expected = "|".join(outcome.case.expected) or NONE
            got = outcome.result.item or ",".join(outcome.result.candidates) or "-"
            lines.append(f"    line {outcome.case.line}: {outcome.case.question!r} expected {expected}; "
                         f"got {outcome.result.action} {got} ({outcome.result.score:.1f})")
    return "\n".join(lines)
