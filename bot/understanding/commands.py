"""``resident-bot faq check``, ``resident-bot match`` and ``resident-bot eval``.

None of these needs a config, a database or the network: only ``faq/``, ``intents/`` and (for
validation) the catalogue. They are what admins and the evaluation harness run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.understanding.evaluate import confusions, evaluate, format_report, kfold, read_cases
from bot.understanding.loader import check_directories, load_knowledge
from bot.understanding.model import MatchResult


def register(subparsers: Any) -> None:
    """Add the understanding subcommands to the ``resident-bot`` parser."""
    faq = subparsers.add_parser("faq", help="办事指南文件工具")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True)
    check = faq_sub.add_parser("check", help="检查 faq/ 和 intents/ 中的所有文件，有问题时以非零状态退出")
    _add_dirs(check)
    check.set_defaults(func=cmd_check)

    match = subparsers.add_parser("match", help="匹配问题（--jsonl：从标准输入每行读一个问题，输出 JSON）")
    _add_dirs(match)
    match.add_argument("--jsonl", action="store_true", help="read one question per line on stdin, write JSON lines")
    match.add_argument("question", nargs="*", help="question(s) to match when not using --jsonl")
    match.set_defaults(func=cmd_match)

    ev = subparsers.add_parser("eval", help="用 question<TAB>expected 文件评估匹配准确率")
    _add_dirs(ev)
    ev.add_argument("file", type=Path, nargs="?", help="TSV file: question<TAB>expected id (ids joined by |, or none)")
    ev.add_argument("--no-misses", action="store_true", help="print only the figures")
    ev.add_argument("--kfold", type=int, metavar="K", default=0,
                    help="instead of a file: hide every K-th of each faq file's own questions, match them "
                         "against the rest, and print the figures and the most frequent confusions")
    ev.set_defaults(func=cmd_eval)


def _add_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faq-dir", type=Path, default=Path("faq"), help="default: ./faq")
    parser.add_argument("--intents-dir", type=Path, default=Path("intents"), help="default: ./intents")
    parser.add_argument("--catalog", type=Path, default=None,
                        help="service catalogue TSV; default ../shared/catalog/service-items.tsv from the project root")


def cmd_check(args: argparse.Namespace) -> int:
    """Print every problem as ``file:line: [field] message``; exit 1 if there is any. Warnings
    (``warning: …`` on stderr) never change the exit code."""
    problems, warnings, count = check_directories(args.faq_dir, args.intents_dir, args.catalog)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.faq_dir} / {args.intents_dir}", file=sys.stderr)
        return 1
    print(f"ok: {count} faq file(s) valid" + (f", {len(warnings)} warning(s)" if warnings else ""))
    return 0


def _quiet_logs() -> None:
    """The loader logs refused files for the service; the commands report problems themselves."""
    logging.getLogger("bot.understanding").setLevel(logging.CRITICAL)


def _load(args: argparse.Namespace, out: TextIO = sys.stderr) -> Any:
    _quiet_logs()
    knowledge, holder = load_knowledge(args.faq_dir, args.intents_dir, args.catalog)
    if holder.catalog_warning:
        print(f"warning: {holder.catalog_warning}", file=out)
    if holder.problems:
        print(f"warning: {len(holder.problems)} problem(s) in the data files; run `resident-bot faq check`",
              file=out)
    if not knowledge.items:
        print(f"warning: no valid faq files in {args.faq_dir}", file=out)
    return knowledge


def result_json(question: str, result: MatchResult) -> dict[str, Any]:
    """The evaluation interface's line format."""
    return {
        "question": question,
        "action": result.action,
        "item": result.item,
        "candidates": list(result.candidates) if result.action == "clarify" else ([result.item] if result.item else []),
        "score": result.score,
    }


def cmd_match(args: argparse.Namespace) -> int:
    """Each question is matched on its own (no conversation state)."""
    knowledge = _load(args)
    questions = (line.rstrip("\r\n") for line in sys.stdin) if args.jsonl else iter(args.question)
    for question in questions:
        if args.jsonl and not question.strip():
            continue
        line = json.dumps(result_json(question, knowledge.match(question)), ensure_ascii=False)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.kfold < 2):
        print("error: give a TSV file, or --kfold K (K >= 2)", file=sys.stderr)
        return 2
    knowledge = _load(args)
    if args.kfold:
        return _print_kfold(knowledge, args.kfold, show_misses=not args.no_misses)
    try:
        cases = read_cases(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(cases, knowledge.match)
    print(format_report(report, str(args.file), show_misses=not args.no_misses))
    return 0


def _print_kfold(knowledge: Any, folds: int, show_misses: bool) -> int:
    """Figures of the k-fold check, then its confusions by (expected, got) pair."""
    report = kfold(list(knowledge.items.values()), knowledge.intents, folds)
    print(format_report(report, f"{folds}-fold over faq questions", show_misses=False))
    if show_misses:
        print("  confusions (expected -> got: count):")
        for expected, got, count in confusions(report, top=40):
            print(f"    {expected} -> {got}: {count}")
        print(f"  misses ({len(report.misses)}):")
        for outcome in report.misses:
            got = outcome.result.item or ",".join(outcome.result.candidates) or "-"
            print(f"    {outcome.case.expected[0]} #{outcome.case.line}: {outcome.case.question!r}; "
                  f"got {outcome.result.action} {got} ({outcome.result.score:.1f})")
    return 0
