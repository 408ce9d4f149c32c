"""Read a TOML data file and say *where* in it a field lives.

Why: admins edit these files by hand, and ``tomllib`` reports a line only for syntax errors. For
semantic problems ("materials[2].form is wrong") we scan the text ourselves for the key or table
header, so every message can point at ``file:line``. The scanner understands the subset of TOML that
our data files use (tables, arrays of tables, ``key = value`` with values spanning lines, comments,
basic and literal strings including multi-line ones); anything it cannot place falls back to the
nearest enclosing table or to no line at all, never to a wrong guess beyond that table.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.understanding.model import Problem

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_\-]+|"(?:[^"\\]|\\.)*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"(?:[^"\\]|\\.)*"|'[^']*'))*)\s*=""")
_SYNTAX_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_DECLARED_TWICE = re.compile(r"^Cannot declare (\(.*\)) twice$")

#: A path inside the document: table/key names and, for arrays of tables, 0-based indexes.
Path_ = tuple[str | int, ...]


def _split_dotted(key: str) -> tuple[str, ...]:
    """Split a dotted TOML key (``a."b.c".d``) into its parts, unquoting each."""
    parts: list[str] = []
    for match in re.finditer(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_\-]+)\s*(?:\.|$)""", key):
        part = match.group(1)
        if part[:1] in "\"'":
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


@dataclass
class _Span:
    """Lines [start, end) that belong to one key's value, or to a table header's body."""

    start: int
    end: int


@dataclass
class TomlLocator:
    """Line numbers (1-based) of tables and keys in one TOML text."""

    text: str
    _keys: dict[Path_, _Span] = field(default_factory=dict)
    _tables: dict[Path_, int] = field(default_factory=dict)
    _headers: dict[tuple[str, ...], list[tuple[int, str]]] = field(default_factory=dict)  # names -> (line, [ or [[)
    _key_lines: dict[Path_, list[int]] = field(default_factory=dict)  # every definition, repeats too

    def __post_init__(self) -> None:
        self._scan()

    def _scan(self) -> None:
        """One pass over the lines, tracking the current table and multi-line strings."""
        lines = self.text.splitlines()
        table: Path_ = ()
        array_counts: dict[tuple[str, ...], int] = {}
        in_multiline: str | None = None
        last_key: Path_ | None = None
        for number, line in enumerate(lines, start=1):
            if in_multiline:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = _HEADER.match(line)
            if header and header.group(1) == header.group(3)[::-1].replace("]", "["):
                self._close(last_key, number)
                last_key = None
                names = _split_dotted(header.group(2))
                self._headers.setdefault(names, []).append((number, header.group(1)))
                if header.group(1) == "[[":
                    index = array_counts.get(names, 0)
                    array_counts[names] = index + 1
                    table = (*names, index)
                else:
                    table = self._resolve_table(names, array_counts)
                for cut in range(1, len(table) + 1):  # [a.b] also locates the implicit table [a]
                    self._tables.setdefault(table[:cut], number)
                continue
            key = _KEY.match(line)
            if key:
                self._close(last_key, number)
                last_key = (*table, *_split_dotted(key.group(1)))
                self._keys.setdefault(last_key, _Span(number, len(lines) + 1))
                self._key_lines.setdefault(last_key, []).append(number)
                rest = line[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_multiline = quote
        self._close(last_key, len(lines) + 1)

    @staticmethod
    def _resolve_table(names: tuple[str, ...], array_counts: dict[tuple[str, ...], int]) -> Path_:
        """``[materials.x]`` after ``[[materials]]`` belongs to the latest array element."""
        for cut in range(len(names), 0, -1):
            prefix = names[:cut]
            if prefix in array_counts:
                return (*prefix, array_counts[prefix] - 1, *names[cut:])
        return names

    def _close(self, key: Path_ | None, line: int) -> None:
        if key is not None and key in self._keys and self._keys[key].end > line:
            span = self._keys[key]
            if span.start < line:
                span.end = line

    def line_of(self, path: Path_) -> int | None:
        """Line of a key, else of its table, else of the closest enclosing table found."""
        for cut in range(len(path), 0, -1):
            prefix = path[:cut]
            if prefix in self._keys:
                return self._keys[prefix].start
            if prefix in self._tables:
                return self._tables[prefix]
        return None

    def declared_before(self, names: tuple[str, ...], line: int) -> tuple[int, str] | None:
        """The last header naming the table ``names`` above ``line``: its line and ``[`` or ``[[``."""
        earlier = [found for found in self._headers.get(names, []) if found[0] < line]
        return earlier[-1] if earlier else None

    def repeated_key(self, line: int) -> tuple[Path_, int] | None:
        """The key defined on ``line`` and the line where the same table defined it before, if so."""
        for path, numbers in self._key_lines.items():
            if line in numbers and numbers[0] < line:
                return path, max(n for n in numbers if n < line)
        return None

    def line_of_value(self, path: Path_, needle: str) -> int | None:
        """Line within a key's (possibly multi-line) value where ``needle`` occurs."""
        span = self._keys.get(path)
        if span is None:
            return self.line_of(path)
        lines = self.text.splitlines()
        for number in range(span.start, min(span.end, len(lines) + 1)):
            if needle in lines[number - 1]:
                return number
        return span.start


@dataclass(frozen=True)
class TomlDocument:
    """A parsed file: its data, its text (for locating) and its display name."""

    name: str
    text: str
    data: dict[str, Any]
    locator: TomlLocator

    def problem(self, path: Path_, message: str, needle: str | None = None) -> Problem:
        """A :class:`Problem` at the line of ``path`` (or of ``needle`` inside its value)."""
        line = self.locator.line_of_value(path, needle) if needle else self.locator.line_of(path)
        return Problem(self.name, line, dotted(path) or None, message)


def dotted(path: Path_) -> str:
    """``("materials", 1, "form")`` → ``materials[2].form`` (1-based, as admins count)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += f".{part}" if out else part
    return out


def read_toml(path: Path, display: str | None = None) -> TomlDocument | Problem:
    """Read, decode and parse one file; a :class:`Problem` instead when that fails.

    A UTF-8 byte-order mark (Windows Notepad) is tolerated; any other non-UTF-8 content (typically a
    file saved as GBK) is reported with the line of the first bad byte.
    """
    name = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Problem(name, None, None, f"无法读取文件: {exc.strerror or exc}")
    return parse_toml_bytes(raw, name)


def parse_toml_bytes(raw: bytes, name: str) -> TomlDocument | Problem:
    """Decode and parse bytes already read (used by the admin editor before writing)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return Problem(name, line, None, f"文件不是 UTF-8 编码（第 {exc.start} 字节起无法解码，可能是 GBK）；请另存为 UTF-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _SYNTAX_AT.search(str(exc))
        line = int(found.group(1)) if found else getattr(exc, "lineno", None)
        message = _SYNTAX_AT.sub("", str(exc)).strip()
        return _declared_twice(name, text, line, message) or Problem(name, line, None, f"TOML 语法错误: {message}")
    return TomlDocument(name, text, data, TomlLocator(text))


def _declared_twice(name: str, text: str, line: int | None, message: str) -> Problem | None:
    """tomllib's "Cannot declare ('synonyms',) twice" / "Cannot overwrite a value" in admins' words.

    Why: the likeliest slip when appending to a file is pasting a second ``[synonyms]`` header, or a
    word that is already there, under the existing ones. The parser refuses the whole file (the
    service keeps its last good version), so the message must say which section or key is repeated,
    and where the first one is, to be fixable without asking anyone."""
    if line is None:
        return None
    locator = TomlLocator(text)
    declared = _DECLARED_TWICE.match(message)
    if declared:
        try:
            names = tuple(str(part) for part in ast.literal_eval(declared.group(1)))
        except (ValueError, SyntaxError):
            return None
        section = dotted(names)
        before = locator.declared_before(names, line)
        if before is None:  # an inline table or dotted keys defined it (a = {…}, a.b = …)
            return Problem(name, line, section, f"小节 [{section}] 在前面已经定义过（可能是 {section} = {{…}} "
                                                f"或 {section}.… = … 的写法）；同一个小节只能定义一次，请合并到一处")
        first, bracket = before
        if bracket == "[[":  # [materials] after [[materials]]
            return Problem(name, line, section, f"[{section}] 与第 {first} 行的 [[{section}]] 同名；"
                                                f"一组同名小节每个都要写成 [[{section}]]")
        return Problem(name, line, section, f"小节 [{section}] 写了两次：第 {first} 行已经有 [{section}]；同一个文件里"
                                            f"一个小节只能写一次，请把这一行下面的内容移到第 {first} 行的小节里，再删掉这一行")
    if message == "Cannot overwrite a value":
        repeated = locator.repeated_key(line)
        if repeated is not None:
            path, first = repeated
            return Problem(name, line, dotted(path), f"“{path[-1]}” 在同一个小节里写了两次（第 {first} 行已经有）；"
                                                     f"请删掉其中一行")
    return None
