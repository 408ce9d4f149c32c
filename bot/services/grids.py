"""Grids and the people in them: the import file, which grid a resident belongs to, who gets a ticket.

Why the import file is keyed by phone numbers: admins keep grids and workers in a spreadsheet, and a
phone number is the one thing about a worker that is unique and that they already know. Re-importing
the file updates names, areas and assignments but keeps workers' ids and WeChat bindings.

A resident's grid comes from (in this order of strength) a scanned grid poster (scene ``grid:<id>``),
a shared location inside a grid's boundary, or the 小区/楼栋 they named in chat.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.clock import utcnow
from bot.storage import grids as q
from bot.storage import residents as resident_q
from bot.understanding.tomlfile import TomlLocator, dotted

ROLES = ("worker", "admin", "duty")
_PHONE = re.compile(r"^[0-9][0-9\-]{6,19}$")
_AREA_SPLIT = re.compile(r"[;；,，、|/\n]+")
CSV_COLUMNS = {
    "grid_id": ("网格编号", "grid_id", "id"),
    "name": ("网格名称", "grid_name", "name"),
    "areas": ("小区楼栋", "areas"),
    "worker": ("网格员", "worker"),
    "worker_phone": ("网格员电话", "worker_phone"),
    "backup": ("备岗", "backup"),
    "backup_phone": ("备岗电话", "backup_phone"),
    "polygon": ("边界", "polygon"),
}
SPECIAL_ROWS = {"管理员": "admin", "admin": "admin", "值班台": "duty", "duty": "duty"}


@dataclass
class WorkerSpec:
    name: str
    phone: str
    role: str = "worker"


@dataclass
class GridSpec:
    id: str
    name: str
    areas: list[str]
    worker_phone: str | None
    backup_phone: str | None
    polygon: list[list[float]] | None = None


@dataclass
class GridsFile:
    workers: dict[str, WorkerSpec] = field(default_factory=dict)  # by phone
    grids: list[GridSpec] = field(default_factory=list)


class GridsFileError(Exception):
    """All problems of one import file, each naming the row/line and the column/field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# ---- parsing ------------------------------------------------------------------------------------


def _polygon_from_text(text: str) -> list[list[float]]:
    """``"32.23,106.28; 32.24,106.29; …"`` → ``[[32.23, 106.28], …]`` (at least three points)."""
    points = []
    for part in re.split(r"[;；]", text):
        part = part.strip()
        if not part:
            continue
        nums = re.split(r"[,，\s]+", part)
        if len(nums) != 2:
            raise ValueError(f"坐标“{part}”应为“纬度,经度”")
        points.append([float(nums[0]), float(nums[1])])
    _check_polygon(points)
    return points


def _check_polygon(points: Any) -> None:
    if not isinstance(points, list) or len(points) < 3:
        raise ValueError("边界至少要有3个点")
    for p in points:
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)):
            raise ValueError("每个点应为[纬度, 经度]")
        if not (-90 <= p[0] <= 90 and -180 <= p[1] <= 180):
            raise ValueError(f"坐标{p}超出范围（先纬度后经度）")


def _add_worker(out: GridsFile, name: str, phone: str, role: str) -> str | None:
    """Register a worker; a problem text when the phone is used for a different name."""
    known = out.workers.get(phone)
    if known is not None:
        if known.name != name:
            return f"电话{phone}已经属于“{known.name}”，不能再给“{name}”"
        if role != "worker":
            known.role = role
        return None
    out.workers[phone] = WorkerSpec(name, phone, role)
    return None


def parse_csv(text: str, name: str = "grids.csv") -> GridsFile:
    """One row per grid (or a 管理员/值班台 row); problems name the row and the column."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        raise GridsFileError([f"{name}: 文件是空的"])
    header = [h.strip() for h in rows[0]]
    problems: list[str] = []
    index: dict[str, int] = {}
    for col, title in enumerate(header, start=1):
        key = next((k for k, names in CSV_COLUMNS.items() if title in names), None)
        if key is None:
            problems.append(f"{name} 第1行 第{col}列: 不认识的列名“{title}”（可用: "
                            + "、".join(n[0] for n in CSV_COLUMNS.values()) + "）")
        else:
            index[key] = col - 1
    for required in ("grid_id", "name", "areas", "worker", "worker_phone"):
        if required not in index:
            problems.append(f"{name} 第1行: 缺少“{CSV_COLUMNS[required][0]}”列")
    if problems:
        raise GridsFileError(problems)
    out = GridsFile()
    seen: dict[str, int] = {}

    def cell(row: list[str], key: str) -> str:
        i = index.get(key)
        return row[i].strip() if i is not None and i < len(row) else ""

    def where(line: int, key: str) -> str:
        return f"{name} 第{line}行 第{index[key] + 1}列（{CSV_COLUMNS[key][0]}）"

    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        gid = cell(row, "grid_id")
        role = SPECIAL_ROWS.get(gid)
        worker, phone = cell(row, "worker"), cell(row, "worker_phone")
        if not worker:
            problems.append(f"{where(line, 'worker')}: 不能为空")
        if not _PHONE.match(phone):
            problems.append(f"{where(line, 'worker_phone')}: 电话号码格式不对：“{phone}”")
        elif worker:
            bad = _add_worker(out, worker, phone, role or "worker")
            if bad:
                problems.append(f"{where(line, 'worker_phone')}: {bad}")
        if role:
            continue
        if not gid:
            problems.append(f"{where(line, 'grid_id')}: 不能为空")
            continue
        if gid in seen:
            problems.append(f"{where(line, 'grid_id')}: 网格编号“{gid}”和第{seen[gid]}行重复")
            continue
        seen[gid] = line
        gname = cell(row, "name")
        if not gname:
            problems.append(f"{where(line, 'name')}: 不能为空")
        areas = [a.strip() for a in _AREA_SPLIT.split(cell(row, "areas")) if a.strip()]
        if not areas:
            problems.append(f"{where(line, 'areas')}: 至少写一个小区或楼栋")
        backup, backup_phone = cell(row, "backup"), cell(row, "backup_phone")
        if backup_phone:
            if not _PHONE.match(backup_phone):
                problems.append(f"{where(line, 'backup_phone')}: 电话号码格式不对：“{backup_phone}”")
                backup_phone = ""
            elif not backup and backup_phone not in out.workers:
                problems.append(f"{where(line, 'backup')}: 写了备岗电话就要写备岗姓名")
                backup_phone = ""
            elif backup:
                bad = _add_worker(out, backup, backup_phone, "worker")
                if bad:
                    problems.append(f"{where(line, 'backup_phone')}: {bad}")
        elif backup:
            problems.append(f"{where(line, 'backup_phone')}: 写了备岗就要写备岗电话")
        polygon = None
        if cell(row, "polygon"):
            try:
                polygon = _polygon_from_text(cell(row, "polygon"))
            except ValueError as exc:
                problems.append(f"{where(line, 'polygon')}: {exc}")
        out.grids.append(GridSpec(gid, gname, areas, phone or None, backup_phone or None, polygon))
    if problems:
        raise GridsFileError(problems)
    return out


def parse_toml(text: str, name: str = "grids.toml") -> GridsFile:
    """``[[workers]]`` (name, phone, role) and ``[[grids]]`` (id, name, areas, worker, backup, polygon),
    workers referenced by phone; problems name the line and the field."""
    try:
        data = tomllib.loads(text.lstrip("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise GridsFileError([f"{name}: {exc}"]) from None
    locator = TomlLocator(text)
    problems: list[str] = []

    def at(path: tuple[str | int, ...], message: str) -> None:
        line = locator.line_of(path)
        problems.append(f"{name}{f' 第{line}行' if line else ''} {dotted(path)}: {message}")

    for key in data:
        if key not in ("workers", "grids"):
            at((key,), "不认识的字段（只能有 [[workers]] 和 [[grids]]）")
    out = GridsFile()
    for i, w in enumerate(data.get("workers", [])):
        for k in w:
            if k not in ("name", "phone", "role"):
                at(("workers", i, k), "不认识的字段")
        wname, phone, role = w.get("name"), str(w.get("phone", "")), w.get("role", "worker")
        if not isinstance(wname, str) or not wname.strip():
            at(("workers", i, "name"), "不能为空")
        if not _PHONE.match(phone):
            at(("workers", i, "phone"), f"电话号码格式不对：“{phone}”")
        if role not in ROLES:
            at(("workers", i, "role"), "只能是 worker（网格员）、admin（管理员）或 duty（值班台）")
        if isinstance(wname, str) and wname.strip() and _PHONE.match(phone) and role in ROLES:
            bad = _add_worker(out, wname.strip(), phone, role)
            if bad:
                at(("workers", i, "phone"), bad)
    seen: set[str] = set()
    for i, g in enumerate(data.get("grids", [])):
        for k in g:
            if k not in ("id", "name", "areas", "worker", "backup", "polygon"):
                at(("grids", i, k), "不认识的字段")
        gid = str(g.get("id", "")).strip()
        if not gid:
            at(("grids", i, "id"), "不能为空")
            continue
        if gid in seen:
            at(("grids", i, "id"), f"网格编号“{gid}”重复")
            continue
        seen.add(gid)
        gname = g.get("name")
        if not isinstance(gname, str) or not gname.strip():
            at(("grids", i, "name"), "不能为空")
            gname = ""
        areas = g.get("areas")
        if not isinstance(areas, list) or not areas or not all(isinstance(a, str) and a.strip() for a in areas):
            at(("grids", i, "areas"), "应为小区/楼栋名称的列表，至少一个")
            areas = []
        refs: dict[str, str | None] = {}
        for role_key in ("worker", "backup"):
            phone = g.get(role_key)
            if phone is None:
                refs[role_key] = None
                if role_key == "worker":
                    at(("grids", i, "worker"), "要写网格员的电话")
                continue
            phone = str(phone)
            if phone not in out.workers:
                at(("grids", i, role_key), f"[[workers]] 里没有电话为“{phone}”的人")
                refs[role_key] = None
            else:
                refs[role_key] = phone
        polygon = g.get("polygon")
        if polygon is not None:
            try:
                _check_polygon(polygon)
            except ValueError as exc:
                at(("grids", i, "polygon"), str(exc))
                polygon = None
        out.grids.append(GridSpec(gid, gname.strip(), [a.strip() for a in areas], refs["worker"],
                                  refs["backup"], polygon))
    if problems:
        raise GridsFileError(problems)
    return out


def parse_grids_file(path: Path | str) -> GridsFile:
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise GridsFileError([f"{p}: 无法读取: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise GridsFileError([f"{p}: 不是 UTF-8 编码（Excel 请“另存为 CSV UTF-8”）"]) from None
    if p.suffix.lower() == ".toml":
        return parse_toml(text, p.name)
    return parse_csv(text, p.name)


# ---- geometry and names -------------------------------------------------------------------------


def point_in_polygon(lat: float, lon: float, polygon: list[list[float]]) -> bool:
    """Ray casting on (lat, lon) pairs: plenty precise at the scale of a 小区."""
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        yi, xi = polygon[i]
        yj, xj = polygon[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).replace("号楼", "栋").replace("幢", "栋")


def match_area(text: str, grids: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grids whose 小区/楼栋 names occur in ``text`` (longest name wins, so "阳光小区3栋" beats "阳光小区")."""
    said = _norm(text)
    best: list[tuple[int, dict[str, Any]]] = []
    for grid in grids:
        lengths = [len(_norm(a)) for a in grid["areas"] if _norm(a) and _norm(a) in said]
        if lengths:
            best.append((max(lengths), grid))
    if not best:
        return []
    top = max(n for n, _ in best)
    return [g for n, g in best if n == top]


def area_choices(grids: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(小区/楼栋, grid id) for every area of every grid, in file order: what a resident picks by number.

    Residents know the name of their 小区, not of their grid, so the choices are the areas."""
    return [(area, grid["id"]) for grid in grids for area in grid["areas"]]


def pick_grid(text: str, grids: list[dict[str, Any]], options: list[str] | None) -> list[dict[str, Any]]:
    """The grids a reply to "which 小区?" means: the numbered option (``options`` are grid ids by
    position, from :func:`area_choices` or a shortlist), else the grids whose areas it names."""
    said = text.strip()
    if options and said.isdigit():
        n = int(said)
        chosen = [g for g in grids if 1 <= n <= len(options) and g["id"] == options[n - 1]]
        return chosen[:1]
    found = match_area(said, grids)
    key = _norm(said)
    if found or len(key) < 2:
        return found
    # part of a name ("普子岭小区" for its 1栋–3栋, "东河"): the grids having such an area
    return [g for g in grids if any(key in _norm(a) for a in g["areas"])]


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


# ---- the directory ------------------------------------------------------------------------------


class GridDirectory:
    """Grids, workers and residents' grids, over the database."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self.clock = clock

    async def import_file(self, data: GridsFile) -> tuple[int, int]:
        """Load grids and workers (upsert); returns (grids, workers)."""
        now = self.clock()
        async with self._engine.begin() as conn:
            ids: dict[str, int] = {}
            for spec in data.workers.values():
                ids[spec.phone] = await q.upsert_worker(conn, spec.name, spec.phone, spec.role, now)
            for g in data.grids:
                await q.upsert_grid(conn, {
                    "id": g.id, "name": g.name, "areas": g.areas, "polygon": g.polygon,
                    "worker_id": ids.get(g.worker_phone or ""), "backup_id": ids.get(g.backup_phone or ""),
                    "updated_at": now})
        return len(data.grids), len(data.workers)

    async def grids(self) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.all_grids(conn)

    async def grid(self, grid_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            return await q.get_grid(conn, grid_id)

    async def worker(self, worker_id: int | None) -> dict[str, Any] | None:
        if worker_id is None:
            return None
        async with self._engine.connect() as conn:
            return await q.get_worker(conn, worker_id)

    async def worker_by_openid(self, openid: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            return await q.worker_by_openid(conn, openid)

    async def worker_by_phone(self, phone: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            return await q.worker_by_phone(conn, phone)

    async def workers(self) -> list[dict[str, Any]]:
        """Everyone in the grids file (workers, admins, the duty desk), by id: whom a ticket can go to."""
        async with self._engine.connect() as conn:
            return await q.all_workers(conn)

    async def admins(self) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await q.workers_with_role(conn, "admin")

    async def set_leave(self, worker_id: int, on_leave: bool) -> None:
        async with self._engine.begin() as conn:
            await q.set_leave(conn, worker_id, on_leave)

    async def grids_of_worker(self, worker_id: int) -> list[str]:
        async with self._engine.connect() as conn:
            return await q.grids_of_worker(conn, worker_id)

    # residents

    async def resident(self, openid: str) -> dict[str, Any] | None:
        """The resident's grid row; a scanned ``grid:<id>`` scene not yet recorded is adopted here."""
        async with self._engine.connect() as conn:
            row = await q.resident_grid(conn, openid)
            if row is not None and row["grid_id"]:
                return row
            follower = await resident_q.get(conn, openid)
        scene = str((follower or {}).get("scene") or "")
        if scene.startswith("grid:") and await self.grid(scene[5:]):
            await self.assign(openid, scene[5:], "scan")
            async with self._engine.connect() as conn:
                return await q.resident_grid(conn, openid)
        return row

    async def assign(self, openid: str, grid_id: str | None, via: str) -> None:
        async with self._engine.begin() as conn:
            await q.save_resident(conn, openid, self.clock(), grid_id=grid_id, via=via)

    async def remember_contact(self, openid: str, address: str | None, phone: str | None) -> None:
        async with self._engine.begin() as conn:
            await q.save_resident(conn, openid, self.clock(), address=address, phone=phone)

    async def grid_at(self, lat: float, lon: float) -> dict[str, Any] | None:
        for grid in await self.grids():
            if grid["polygon"] and point_in_polygon(lat, lon, grid["polygon"]):
                return grid
        return None

    async def assignee(self, grid_id: str | None) -> tuple[dict[str, Any] | None, str]:
        """Who gets a ticket of this grid, and why: the worker, the backup when the worker is on leave,
        else the duty desk (also for residents without a grid), else an admin."""
        async with self._engine.connect() as conn:
            grid = await q.get_grid(conn, grid_id) if grid_id else None
            if grid is not None:
                for key, why in (("worker_id", "grid"), ("backup_id", "backup")):
                    if grid[key] is not None:
                        person = await q.get_worker(conn, grid[key])
                        if person and not person["on_leave"]:
                            return person, why
            for role in ("duty", "admin"):
                for person in await q.workers_with_role(conn, role):
                    if not person["on_leave"]:
                        return person, role
        return None, "none"

    # invites

    async def create_invite(self, worker_id: int, ttl_hours: int) -> str:
        """A fresh six-digit one-time code (only its hash is stored)."""
        async with self._engine.begin() as conn:
            if await q.get_worker(conn, worker_id) is None:
                raise LookupError(f"no worker {worker_id}")
            code = f"{secrets.randbelow(10**6):06d}"
            await q.add_invite(conn, hash_code(code), worker_id, self.clock() + timedelta(hours=ttl_hours))
        return code

    async def bind(self, code: str, openid: str) -> dict[str, Any] | None:
        """Spend the code and bind ``openid`` to its worker; the worker, or None."""
        async with self._engine.begin() as conn:
            worker_id = await q.use_invite(conn, hash_code(code), openid, self.clock())
            if worker_id is None:
                return None
            await q.bind_worker(conn, worker_id, openid)
            return await q.get_worker(conn, worker_id)
