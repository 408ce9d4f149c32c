"""Validate one ``faq/<id>.toml`` into a :class:`ServiceItem`, and check the files against each other.

Why so strict: these files are edited by community staff, not programmers, and the bot reads them to
residents verbatim. An unknown key is usually a misspelt one (``material`` for ``materials``) whose
content would silently never be shown, so it is an error, not a warning. Every problem names the file,
the line and the field, in Chinese, so the admin can fix it without asking anyone.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from bot.understanding.catalog import CatalogEntry
from bot.understanding.model import DEPARTMENTS, MATERIAL_FORMS, Material, Problem, ServiceItem, Where
from bot.understanding.tomlfile import Path_, TomlDocument, dotted, read_toml


@dataclass(frozen=True)
class Field:
    """Schema of one key: its kind, whether required, and whether an empty value is allowed."""

    kind: str  # "str", "strlist", "bool", "int", "table", "tables"
    required: bool
    nonempty: bool = True


ITEM_FIELDS: dict[str, Field] = {
    "id": Field("str", True),
    "name": Field("str", True),
    "department": Field("str", True),
    "aliases": Field("strlist", True),
    "questions": Field("strlist", True),
    "conditions": Field("strlist", True),
    "steps": Field("strlist", True),
    "time_limit": Field("str", True),
    "fee": Field("str", True),
    "online": Field("str", False),
    "proxy": Field("bool", True),
    "phone": Field("str", True),
    "basis": Field("strlist", False, nonempty=False),
    "where": Field("table", True),
    "materials": Field("tables", True),
}
WHERE_FIELDS: dict[str, Field] = {
    "place": Field("str", True),
    "hours": Field("str", True),
    "address": Field("str", False),
    "note": Field("str", False),
}
MATERIAL_FIELDS: dict[str, Field] = {
    "name": Field("str", True),
    "form": Field("str", True),
    "count": Field("int", False),
    "note": Field("str", False),
}

_KIND_NAMES = {"str": "字符串", "strlist": "字符串列表", "bool": "true/false", "int": "整数",
               "table": "表（[where] 这样的小节）", "tables": "表数组（[[materials]] 这样的小节）"}


def _kind_ok(kind: str, value: Any) -> bool:
    """Whether a parsed TOML value has the expected kind (bool is not an int here)."""
    if kind == "str":
        return isinstance(value, str)
    if kind == "strlist":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "tables":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    raise ValueError(kind)


def check_table(doc: TomlDocument, table: Mapping[str, Any], schema: Mapping[str, Field],
                prefix: Path_) -> list[Problem]:
    """Unknown keys, missing keys, wrong kinds and empty values of one table."""
    problems: list[Problem] = []
    for key in table:
        if key not in schema:
            known = "、".join(schema)
            problems.append(doc.problem((*prefix, key), f"未知字段 “{key}”（可用字段：{known}）"))
    for key, spec in schema.items():
        path = (*prefix, key)
        if key not in table:
            if spec.required:
                problems.append(Problem(doc.name, _missing_line(doc, table, schema, prefix, key),
                                        dotted(path), f"缺少必填字段 “{dotted(path)}”"))
            continue
        value = table[key]
        if not _kind_ok(spec.kind, value):
            problems.append(doc.problem(path, f"类型错误：应为{_KIND_NAMES[spec.kind]}，实际是 {_describe(value)}"))
            continue
        problems.extend(_check_nonempty(doc, path, spec, value))
    return problems


def _missing_line(doc: TomlDocument, table: Mapping[str, Any], schema: Mapping[str, Field], prefix: Path_,
                  key: str) -> int:
    """Where a missing key belongs: its table's header, else after the field that precedes it in the
    schema, else line 1."""
    if prefix:
        return doc.locator.line_of(prefix) or 1
    names = list(schema)
    for previous in reversed(names[: names.index(key)]):
        if previous in table:
            line = doc.locator.line_of((previous,))
            if line:
                return line
    return 1


def _check_nonempty(doc: TomlDocument, path: Path_, spec: Field, value: Any) -> list[Problem]:
    """Empty strings and empty lists are almost always an unfinished edit."""
    if not spec.nonempty:
        return []
    if spec.kind == "str" and not value.strip():
        return [doc.problem(path, "不能为空")]
    if spec.kind in ("strlist", "tables") and not value:
        return [doc.problem(path, "至少需要一项")]
    if spec.kind == "strlist":
        return [doc.problem(path, f"第 {i + 1} 项是空字符串", needle='""') for i, v in enumerate(value) if not v.strip()]
    return []


def _describe(value: Any) -> str:
    names = {str: "字符串", bool: "true/false", int: "整数", float: "小数", list: "列表", dict: "表"}
    return names.get(type(value), type(value).__name__) + f"（{str(value)[:30]}）"


def validate_item(doc: TomlDocument, expected_id: str | None) -> tuple[ServiceItem | None, list[Problem]]:
    """Check one parsed file against the schema; the item only when there is no problem."""
    data = doc.data
    problems = check_table(doc, data, ITEM_FIELDS, ())
    where = data.get("where")
    if isinstance(where, dict):
        problems += check_table(doc, where, WHERE_FIELDS, ("where",))
    materials = data.get("materials")
    if isinstance(materials, list):
        for index, material in enumerate(materials):
            if isinstance(material, dict):
                problems += _check_material(doc, material, index)
    problems += _check_values(doc, expected_id)
    if problems:
        return None, problems
    return _build_item(data), []


def _check_material(doc: TomlDocument, material: Mapping[str, Any], index: int) -> list[Problem]:
    prefix: Path_ = ("materials", index)
    problems = check_table(doc, material, MATERIAL_FIELDS, prefix)
    form = material.get("form")
    if isinstance(form, str) and form.strip() and form not in MATERIAL_FORMS:
        problems.append(doc.problem((*prefix, "form"), f"“{form}” 不是可用的形式（{' / '.join(MATERIAL_FORMS)}）"))
    count = material.get("count")
    if _kind_ok("int", count) and count < 1:
        problems.append(doc.problem((*prefix, "count"), f"份数必须 ≥1，实际是 {count}"))
    return problems


def _check_values(doc: TomlDocument, expected_id: str | None) -> list[Problem]:
    """Value rules beyond kinds: id equals the file name, known department, no repeated alias."""
    data = doc.data
    problems: list[Problem] = []
    ident = data.get("id")
    if isinstance(ident, str) and expected_id is not None and ident != expected_id:
        problems.append(doc.problem(("id",), f"id “{ident}” 与文件名不一致（应为 “{expected_id}”）"))
    department = data.get("department")
    if isinstance(department, str) and department.strip() and department not in DEPARTMENTS:
        problems.append(doc.problem(("department",), f"未知部门 “{department}”（可用：{' / '.join(DEPARTMENTS)}）"))
    aliases = data.get("aliases")
    if _kind_ok("strlist", aliases):
        seen: set[str] = set()
        for alias in aliases:
            key = alias_key(alias)
            if key and key in seen:
                problems.append(doc.problem(("aliases",), f"别名 “{alias}” 在本文件中重复", needle=f'"{alias}"'))
            seen.add(key)
    return problems


def _build_item(data: Mapping[str, Any]) -> ServiceItem:
    """Only called on validated data, so every access is safe."""
    where = data["where"]
    return ServiceItem(
        id=data["id"], name=data["name"].strip(), department=data["department"],
        aliases=tuple(a.strip() for a in data["aliases"]),
        questions=tuple(q.strip() for q in data["questions"]),
        conditions=tuple(data["conditions"]), steps=tuple(data["steps"]),
        time_limit=data["time_limit"], fee=data["fee"], online=data.get("online"),
        proxy=data["proxy"], phone=data["phone"], basis=tuple(data.get("basis", ())),
        where=Where(where["place"], where["hours"], where.get("address"), where.get("note")),
        materials=tuple(Material(m["name"], m["form"], m.get("count"), m.get("note")) for m in data["materials"]),
    )


def alias_key(alias: str) -> str:
    """Comparison key for aliases: width-, case- and punctuation-insensitive.

    Deliberately lighter than the matcher's normaliser (which depends on ``intents/``), so the
    uniqueness rule does not change when someone edits a synonym list.
    """
    text = unicodedata.normalize("NFKC", alias).lower()
    return "".join(ch for ch in text if ch.isalnum())


@dataclass(frozen=True)
class LoadedItem:
    """A valid item plus where it came from (for cross-file messages)."""

    item: ServiceItem
    doc: TomlDocument


def load_item_file(path: Path, display: str | None = None) -> tuple[LoadedItem | None, list[Problem]]:
    """Read, parse and validate ``path``; the id must equal the file name without ``.toml``."""
    doc = read_toml(path, display)
    if isinstance(doc, Problem):
        return None, [doc]
    item, problems = validate_item(doc, path.stem)
    return (LoadedItem(item, doc) if item else None), problems


def check_catalog(loaded: LoadedItem, catalog: Mapping[str, CatalogEntry] | None) -> list[Problem]:
    """The id must be in the catalogue, and the department must agree with it."""
    if catalog is None:
        return []
    item, doc = loaded.item, loaded.doc
    entry = catalog.get(item.id)
    if entry is None:
        return [doc.problem(("id",), f"id “{item.id}” 不在服务事项目录中")]
    if entry.department and entry.department != item.department:
        return [doc.problem(("department",), f"部门 “{item.department}” 与目录不一致（目录为 “{entry.department}”）")]
    return []


def duplicate_aliases(candidate: LoadedItem, others: Iterable[LoadedItem]) -> list[Problem]:
    """Aliases of ``candidate`` that are also an alias or the name of another item.

    An alias shared by two items would make the matcher's answer depend on file order, so it is refused.
    """
    owners: dict[str, tuple[LoadedItem, str]] = {}
    for other in others:
        if other.item.id == candidate.item.id:
            continue
        for alias in (*other.item.aliases, other.item.name):
            owners.setdefault(alias_key(alias), (other, alias))
    problems: list[Problem] = []
    for alias in candidate.item.aliases:
        hit = owners.get(alias_key(alias))
        if hit:
            other, original = hit
            line = other.doc.locator.line_of_value(("aliases",), f'"{original}"') or other.doc.locator.line_of(("name",))
            problems.append(candidate.doc.problem(
                ("aliases",), f"别名 “{alias}” 与 {other.doc.name}:{line} 的 “{original}” 重复（别名全库不能重复）",
                needle=f'"{alias}"'))
    return problems
