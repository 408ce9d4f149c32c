"""Match latency: p50/p99 over the dev questions, at the real catalogue size and at 5,000 items.

Why 5,000: a whole province's catalogue (every county's copy of every item, named after the place)
is about that size; the matcher must stay index-driven rather than loop over items. The synthetic
items are real items re-badged with place names (and aliases/questions mixed between places), so
their vocabulary and posting-list lengths look like the real thing at scale.

Each timed call starts with an empty normaliser cache, so the figures are for questions never seen
before (the service caches repeated questions, which would flatter the numbers). As in the service
(bot/heap.py), the knowledge is frozen out of the garbage collector's walk once it is built.

Targets: p99 < 2 ms at the real size, < 20 ms at 5,000 items, judged on all calls. Exit status 1
when missed. Under each figure, the same over each question's fastest round: what the code costs
without the machine's interference, to compare two versions of the code on a noisy machine.

    .venv/bin/python bench/match.py [--items 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.heap import freeze_long_lived, refreeze_after_swap  # noqa: E402
from bot.understanding.evaluate import read_cases  # noqa: E402
from bot.understanding.knowledge import Knowledge  # noqa: E402
from bot.understanding.loader import load_knowledge  # noqa: E402
from bot.understanding.model import ServiceItem  # noqa: E402

PLACES = (
    "旺苍", "苍溪", "剑阁", "青川", "昭化", "朝天", "利州", "南江", "通江", "平昌", "巴州", "恩阳", "阆中",
    "南部", "仪陇", "营山", "蓬安", "西充", "嘉陵", "顺庆", "高坪", "广安", "岳池", "武胜", "邻水", "华蓥",
    "达川", "通川", "宣汉", "开江", "大竹", "渠县", "万源", "梓潼", "江油", "平武", "北川", "安州", "游仙",
    "涪城", "三台", "盐亭", "射洪", "蓬溪", "大英", "船山", "安居", "简阳", "金堂", "双流", "郫都", "新津",
    "都江堰", "彭州", "邛崃", "崇州", "蒲江", "大邑", "雅安", "名山", "荥经", "汉源", "石棉", "天全",
)
TOWNS = ("东河", "嘉川", "木门", "白水", "尚武", "张华", "黄洋", "普济", "三江", "高阳", "龙凤", "五权")


def inflate(items: list[ServiceItem], target: int, seed: int = 7) -> list[ServiceItem]:
    """``target`` synthetic items: real items prefixed with a county (and sometimes a town) name."""
    rng = random.Random(seed)
    out: list[ServiceItem] = []
    serial = 0
    while len(out) < target:
        base = items[serial % len(items)]
        place = PLACES[(serial // len(items)) % len(PLACES)]
        town = rng.choice(TOWNS) if rng.random() < 0.3 else ""
        prefix = place + town
        donor = items[rng.randrange(len(items))]
        questions = [f"{prefix}{q}" for q in base.questions] + [f"在{place}{donor.questions[0]}"]
        out.append(dataclasses.replace(
            base, id=f"{base.id}.{serial}", name=f"{prefix}{base.name}",
            aliases=tuple(f"{prefix}{a}" for a in base.aliases), questions=tuple(questions)))
        serial += 1
    return out


def measure(knowledge: Knowledge, questions: list[str], rounds: int) -> list[float]:
    """Per-call latency in milliseconds of ``understand`` on uncached questions."""
    for question in questions[:20]:
        knowledge.understand(question)  # warm-up: imports, pinyin table, OpenCC
    samples: list[float] = []
    clear = knowledge.normalizer.normalize.cache_clear
    for _ in range(rounds):
        for question in questions:
            clear()
            start = time.perf_counter()
            knowledge.understand(question)
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(name: str, samples: list[float], target: float, questions: int) -> bool:
    """Print the figures of all calls, judged against the target, then those of each question's fastest
    round (``questions``: how many questions one round has).

    Why the second line: on a shared machine a neighbour's burst lands on a few calls at random and
    moves the p99 of all calls by a quarter from run to run; a question's fastest round is what the
    code itself costs, so two versions of the code can be compared there. The target stays judged on
    all calls: a resident's message meets the machine as it is."""
    p50, p99 = statistics.median(samples), percentile(samples, 0.99)
    ok = p99 < target
    print(f"{name:<28} n={len(samples):5d}  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  max {max(samples):6.3f} ms  "
          f"(target p99 < {target:g} ms: {'ok' if ok else 'MISSED'})")
    best = [min(samples[index::questions]) for index in range(questions)]
    print(f"{'  each question, best round':<28} n={len(best):5d}  p50 {statistics.median(best):6.3f} ms  "
          f"p99 {percentile(best, 0.99):6.3f} ms  max {max(best):6.3f} ms")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faq-dir", type=Path, default=ROOT / "faq")
    parser.add_argument("--intents-dir", type=Path, default=ROOT / "intents")
    parser.add_argument("--questions", type=Path, default=ROOT / "tests" / "data" / "dev.tsv")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("bot.understanding").setLevel(logging.CRITICAL)

    knowledge, _ = load_knowledge(args.faq_dir, args.intents_dir)
    questions = [case.question for case in read_cases(args.questions)]
    freeze_long_lived()  # what `serve` does after start-up
    ok = report(f"{len(knowledge.items)} items", measure(knowledge, questions, args.rounds), 2.0, len(questions))

    start = time.perf_counter()
    big = Knowledge.build(inflate(list(knowledge.items.values()), args.items), knowledge.intents)
    print(f"built {len(big.items)} synthetic items in {time.perf_counter() - start:.1f} s")
    refreeze_after_swap()  # what `serve` does after a knowledge reload
    ok &= report(f"{len(big.items)} items", measure(big, questions, args.rounds), 20.0, len(questions))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
