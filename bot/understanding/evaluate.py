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

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from bot.understanding.model import MatchResult, ServiceItem

if TYPE_CHECKING:
    from bot.understanding.intentsfile import IntentData
    from bot.understanding.matcher import MatcherSettings

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


def kfold(items: Sequence[ServiceItem], intents: "IntentData", folds: int = 5,
          settings: "MatcherSettings | None" = None) -> Report:
    """Self-supervised check over the FAQ files' own ``questions``: hide every ``folds``-th question
    of every item (fold *f* holds questions *f*, *f + folds*, …), match the hidden ones against an
    index built from the rest, and score them like a TSV line expecting their own item.

    Why: dev and the hold-outs are finite and dev has been tuned on; the FAQ questions are written
    per item by whoever edits the file, so hiding some of them measures how well the matcher carries
    over to phrasings it has not indexed, without a question set that can be over-fitted. A hidden
    question that is genuinely vague (社保卡咋个办) is labelled with its own item only, so a clarify
    offering it counts as a miss here; :func:`confusions` tells those apart from wrong answers."""
    from bot.understanding.knowledge import Knowledge  # the snapshot imports the matcher: import late

    report = Report()
    for fold in range(folds):
        kept = [replace(item, questions=tuple(q for i, q in enumerate(item.questions) if i % folds != fold))
                for item in items]
        knowledge = Knowledge.build(kept, intents, settings)
        for item in items:
            for index, question in enumerate(item.questions):
                if index % folds == fold:
                    case = Case(index + 1, question, (item.id,))
                    result = knowledge.match(question)
                    report.outcomes.append(Outcome(case, result, is_correct(case.expected, result)))
    return report


def confusions(report: Report, top: int = 20) -> list[tuple[str, str, int]]:
    """The most frequent (expected, got) pairs among the misses: ``got`` is the answered id,
    ``clarify:`` plus the offered ids when the expected one was among them (a vague question, or a
    sibling too close to tell), ``clarify-without:`` when it was not, or ``fallback``."""
    counts: Counter[tuple[str, str]] = Counter()
    for outcome in report.misses:
        result, expected = outcome.result, "|".join(outcome.case.expected) or NONE
        if result.action == "answer":
            got = result.item or "-"
        elif result.action == "clarify":
            offered = set(outcome.case.expected) <= set(result.candidates)
            got = ("clarify:" if offered else "clarify-without:") + ",".join(sorted(result.candidates))
        else:
            got = "fallback"
        counts[(expected, got)] += 1
    return [(e, g, n) for (e, g), n in counts.most_common(top)]


MISS_KINDS = (
    "in scope, fell back",
    "none, answered or clarified",
    "wrong item answered",
    "one item, clarified with it",
    "clarify without the expected item",
    "ambiguous, answered one",
    "ambiguous, clarify lacks one",
)


def miss_kind(expected: tuple[str, ...], result: MatchResult) -> str:
    """Which of :data:`MISS_KINDS` a miss is. Why: the kinds call for different fixes (coverage of
    phrasings, out-of-scope words, sibling contrast, calibration), and the counts per kind can be read
    off a held-out set without reading its questions."""
    if not expected:
        return MISS_KINDS[1]
    if result.action == "fallback":
        return MISS_KINDS[0]
    if len(expected) == 1:
        if result.action == "answer":
            return MISS_KINDS[2]
        return MISS_KINDS[3] if expected[0] in result.candidates else MISS_KINDS[4]
    if result.action == "answer":
        return MISS_KINDS[5] if result.item in expected else MISS_KINDS[2]
    return MISS_KINDS[6]


def miss_kinds(report: Report) -> Counter[str]:
    return Counter(miss_kind(o.case.expected, o.result) for o in report.misses)


def format_report(report: Report, name: str, show_misses: bool = True) -> str:
    lines = [
        f"{name}: {report.total} questions",
        f"  accuracy            {report.accuracy:6.1%}",
        f"  clarify rate        {report.clarify_rate:6.1%}",
        f"  fallback precision  {report.fallback_precision:6.1%}",
        f"  fallback recall     {report.fallback_recall:6.1%}",
    ]
    kinds = miss_kinds(report)
    if kinds:
        lines.append("  misses by kind:")
        lines.extend(f"    {kind:<36}{kinds[kind]:4d}" for kind in MISS_KINDS if kinds[kind])
    if show_misses and report.misses:
        lines.append(f"  misses ({len(report.misses)}):")
        for outcome in report.misses:
            expected = "|".join(outcome.case.expected) or NONE
            got = outcome.result.item or ",".join(outcome.result.candidates) or "-"
            lines.append(f"    line {outcome.case.line}: {outcome.case.question!r} expected {expected}; "
                         f"got {outcome.result.action} {got} ({outcome.result.score:.1f})")
    return "\n".join(lines)
