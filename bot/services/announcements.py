"""Public announcements (公示): 社区开支, 工程项目, 好人好事 … published as files, answered on request.

Why files and a table: an admin writes ``announcements/<id>.toml`` and runs ``announcements add FILE``
(validated like every data file, problems name file, line and field); the chat answers from the
table, so every worker process sees the same list without watching the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.storage import notices as q
from bot.understanding.model import Problem
from bot.understanding.tomlfile import TomlDocument, read_toml

KINDS = ("社区开支", "工程项目", "好人好事", "其他公示")
FIELDS = {"id", "kind", "title", "date", "summary", "link"}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,47}$")


@dataclass(frozen=True)
class AnnouncementDef:
    id: str
    kind: str
    title: str
    published_on: str  # YYYY-MM-DD
    summary: str
    link: str | None
    source: str


class AnnouncementFileError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def validate_announcement(doc: TomlDocument, default_id: str) -> AnnouncementDef | list[Problem]:
    data, problems = doc.data, []
    for key in data:
        if key not in FIELDS:
            problems.append(doc.problem((key,), f"未知的字段「{key}」（可用：{'、'.join(sorted(FIELDS))}）"))
    ann_id = data.get("id", default_id)
    if not isinstance(ann_id, str) or not ID_RE.match(ann_id):
        problems.append(doc.problem(("id",), "编号只能用英文字母、数字、- 和 _（最长 48 个字符）"))
    kind = data.get("kind")
    if kind not in KINDS:
        problems.append(doc.problem(("kind",) if "kind" in data else (), f"kind 应为：{'、'.join(KINDS)}"))
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        problems.append(doc.problem(("title",) if "title" in data else (), "缺少标题 title"))
    elif len(title) > 100:
        problems.append(doc.problem(("title",), f"标题太长（{len(title)} 字，最多 100 字）"))
    raw_date = data.get("date")
    published: str | None = None
    if isinstance(raw_date, datetime):
        published = raw_date.date().isoformat()
    elif isinstance(raw_date, date):
        published = raw_date.isoformat()
    elif isinstance(raw_date, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw_date.strip()):
        published = raw_date.strip()
    if published is None:
        problems.append(doc.problem(("date",) if "date" in data else (), "date 应为日期，如 2025-06-01"))
    summary = data.get("summary", "")
    if not isinstance(summary, str):
        problems.append(doc.problem(("summary",), "summary 应为文字"))
        summary = ""
    link = data.get("link")
    if link is not None and (not isinstance(link, str) or not link.startswith(("http://", "https://"))):
        problems.append(doc.problem(("link",), "链接应以 http:// 或 https:// 开头"))
    if problems:
        return problems
    return AnnouncementDef(str(ann_id), str(kind), str(title).strip(), str(published), summary.strip(), link, doc.name)


def load_announcement_file(path: str | Path) -> AnnouncementDef:
    p = Path(path)
    doc = read_toml(p, str(path))
    if isinstance(doc, Problem):
        raise AnnouncementFileError([doc])
    result = validate_announcement(doc, p.stem)
    if isinstance(result, list):
        raise AnnouncementFileError(result)
    return result


class Announcements:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock

    async def add(self, ann: AnnouncementDef) -> None:
        async with self._engine.begin() as conn:
            await q.upsert_announcement(conn, {
                "id": ann.id, "kind": ann.kind, "title": ann.title, "published_on": ann.published_on,
                "summary": ann.summary, "link": ann.link, "source": ann.source, "updated_at": self._clock(),
            })

    async def latest(self, kind: str | None = None, limit: int = 3) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.latest_announcements(conn, kind, limit)
