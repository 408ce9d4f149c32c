"""Shared builders for the understanding tests: a tiny FAQ tree written to a temporary directory.

Why not the real faq/: unit tests must fail for the reason they name, not because an admin edited an
item. The real data is exercised by the accuracy and CLI tests.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.understanding.knowledge import Knowledge
    from bot.understanding.model import MatchResult

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"

CATALOG = (
    "id\tdepartment\tname\tcommon_names\n"
    "civil.dibao\t民政\t最低生活保障申请\t低保\n"
    "hrss.unemployment-benefit\t人社\t失业保险金申领\t失业金\n"
    "civil.senior-card\t民政\t老年人优待证办理\t老年证\n"
    "police.id-card\t公安\t居民身份证换领补领\t补办身份证\n"
)


def item_toml(ident: str, name: str, department: str, aliases: list[str], questions: list[str]) -> str:
    """A complete, valid FAQ file; tests then break one thing in it."""
    quoted = lambda values: ", ".join(f'"{v}"' for v in values)  # noqa: E731
    return f"""# {name}
id = "{ident}"
name = "{name}"
department = "{department}"

aliases = [{quoted(aliases)}]

questions = [
  {quoted(questions)},
]

conditions = ["户籍在旺苍县"]
steps = ["到社区便民服务站提出申请", "当场办结"]
time_limit = "即时办结"
fee = "免费"
proxy = true
phone = "0839-7200000"

[where]
place = "普子岭社区便民服务站"
hours = "工作日 9:00-17:30"

[[materials]]
name = "居民身份证"
form = "原件"
count = 1

[[materials]]
name = "户口簿"
form = "原件及复印件"
"""


ITEMS = {
    "civil.dibao": item_toml("civil.dibao", "最低生活保障申请", "民政", ["低保", "吃低保"],
                             ["屋头困难咋个申请低保", "低保要准备啥子材料"]),
    "hrss.unemployment-benefit": item_toml("hrss.unemployment-benefit", "失业保险金申领", "人社",
                                           ["失业金", "领失业金"], ["失业了能领失业金不", "失业金每个月发好多"]),
    "civil.senior-card": item_toml("civil.senior-card", "老年人优待证办理", "民政", ["老年证", "优待证"],
                                   ["老人坐车免费的证咋个办", "满了六十岁能办老年证不"]),
    "police.id-card": item_toml("police.id-card", "居民身份证换领补领", "公安", ["补办身份证", "身份证丢了"],
                                ["身份证过期了咋个换", "身份证掉了去哪里补"]),
}

INTENTS = """
[fillers]
phrases = ["你好", "请问", "在吗", "麻烦问下"]

[stopwords]
phrases = ["吗", "呢", "了", "的", "怎么", "什么", "可以", "能不能"]

[dialect]
"咋个" = "怎么"
"啥子" = "什么"
"屋头" = "家里"
"得行不" = "可以吗"
"好久" = "多久"

[intent.greeting]
phrases = ["早上好", "hello"]

[intent.thanks]
phrases = ["谢谢", "好的"]

[intent.help]
phrases = ["菜单", "帮助"]

[intent.handoff]
match = "contains"
phrases = ["转人工", "人工客服"]

[aspect.materials]
phrases = ["材料", "带什么"]

[aspect.steps]
phrases = ["流程", "怎么办"]

[aspect.where]
phrases = ["在哪里", "哪里"]

[aspect.time]
phrases = ["多久", "几天"]

[aspect.fee]
phrases = ["多少钱", "收费"]

[aspect.conditions]
phrases = ["条件"]

[aspect.proxy]
phrases = ["代办"]
"""


def write_tree(root: Path, items: dict[str, str] | None = None, intents: str = INTENTS,
               catalog: str | None = CATALOG) -> tuple[Path, Path, Path]:
    """faq/, intents/ and a catalogue under ``root``; returns (faq_dir, intents_dir, catalog_path)."""
    faq = root / "faq"
    faq.mkdir(parents=True, exist_ok=True)
    for ident, text in (ITEMS if items is None else items).items():
        (faq / f"{ident}.toml").write_text(text, encoding="utf-8")
    intents_dir = root / "intents"
    intents_dir.mkdir(exist_ok=True)
    (intents_dir / "base.toml").write_text(intents, encoding="utf-8")
    catalog_path = root / "catalog.tsv"
    if catalog is not None:
        catalog_path.write_text(catalog, encoding="utf-8")
    return faq, intents_dir, catalog_path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle`` (what the validator should report)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


@lru_cache(maxsize=1)
def shipped_knowledge() -> "Knowledge":
    """The real faq/ and intents/ as shipped, checked against the catalogue and loaded once per test
    process (for the data-driven tests that must hold on what admins actually get); any problem in
    the files fails. Tests take it as the ``knowledge`` fixture (tests/conftest.py)."""
    from bot.understanding.loader import load_knowledge

    loaded, holder = load_knowledge(ROOT / "faq", ROOT / "intents", ROOT.parent / "shared" / "catalog" / "service-items.tsv")
    assert loaded.items and not holder.problems, holder.problems
    return loaded


def assert_decided(result: "MatchResult", expected: str | None) -> None:
    """``expected`` as in the question sets: an id (answer it), ids joined by ``|`` (a clarify offering
    all of them) or ``None`` (fall back)."""
    if expected is None:
        assert result.action == "fallback", result
    elif "|" in expected:
        assert result.action == "clarify" and set(expected.split("|")) <= set(result.candidates), result
    else:
        assert (result.action, result.item) == ("answer", expected), result


def assert_needs_listed(result: "MatchResult", items: "set[str] | str") -> None:
    """A message that says outright it asks for each of several needs (还想, 顺便, 另外 …; see
    ``TwoNeeds.both_asked``) is asked back with all of them listed, ``also`` marking them as needs to
    take one after the other (round 16)."""
    wanted = set(items.split("|")) if isinstance(items, str) else set(items)
    assert result.action == "clarify" and wanted <= set(result.candidates), result
    assert result.also == result.candidates, result


def assert_both_needs(result: "MatchResult", items: "set[str] | str") -> None:
    """A message with two needs (``items``, a set or ids joined by ``|``) is answered about one of them
    and carries the others in ``also``, which the reply offers next (see bot/understanding/needs.py)."""
    wanted = set(items.split("|")) if isinstance(items, str) else set(items)
    assert result.action == "answer" and result.item in wanted, result
    assert wanted <= {result.item, *result.also}, result
