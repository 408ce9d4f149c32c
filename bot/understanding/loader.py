"""Load ``faq/`` and ``intents/`` from disk, validate, and keep serving through bad edits.

Why per-file "last good version": an admin saving a half-finished file must not take the bot down or
make an item disappear. Each file is validated on its own and against the others; a file that fails
is refused with a logged error and its previous valid version keeps serving, while every other file's
edits are picked up. Polling mtimes (no inotify dependency) is plenty for files edited a few times a
day; :meth:`KnowledgeHolder.watch` is meant to run as a background task of the app.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generic, Mapping, TypeVar

from bot.understanding.catalog import CatalogEntry, default_catalog_path, load_catalog
from bot.understanding.faqfile import LoadedItem, check_catalog, duplicate_aliases, load_item_file
from bot.understanding.intentsfile import (IntentFragment, conflicts, load_fragment_file, merge, unanchoring_cues,
                                           unknown_ambiguous_ids)
from bot.understanding.knowledge import Knowledge
from bot.understanding.matcher import MatcherSettings
from bot.understanding.model import Problem

log = logging.getLogger("bot.understanding")

T = TypeVar("T", LoadedItem, IntentFragment)
Stamp = tuple[int, int, int]


def _stamp(path: Path) -> Stamp | None:
    """(mtime_ns, size, inode): changes on every save, including editors that replace the file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class _Record(Generic[T]):
    stamp: Stamp | None
    latest: T | None                 # newest version, when it is valid on its own
    latest_problems: list[Problem]   # why the newest version is invalid on its own
    good: T | None = None            # what is being served for this file
    reported: tuple[Problem, ...] = ()


@dataclass
class _Directory(Generic[T]):
    """One watched directory of ``*.toml`` files with per-file last-good state."""

    path: Path
    load: Callable[[Path, str], tuple[T | None, list[Problem]]]
    cross_check: Callable[[T, list[T]], list[Problem]]
    records: dict[Path, _Record[T]] = field(default_factory=dict)
    pending: dict[Path, Stamp | None] = field(default_factory=dict)  # changed, not yet settled (see scan)

    def scan(self, settle: bool = False) -> bool:
        """Re-read changed files; True when anything was added, changed or removed. With ``settle``, a
        file is read only once two scans in a row found it with the same new stamp.

        Why settle: many editors save by truncating and rewriting in place, and a poll that lands in
        between reads half a file, refuses it with a logged error and accepts it a poll later: a false
        alarm for the admin watching the log. Comparing two polls needs no clock (file times may be
        skewed or moved by hand); the cost is one poll interval of delay."""
        changed = False
        present = sorted(self.path.glob("*.toml")) if self.path.is_dir() else []
        for gone in set(self.records) - set(present):
            log.info("knowledge file removed: %s", gone)
            del self.records[gone]
            changed = True
        for path in present:
            stamp = _stamp(path)
            record = self.records.get(path)
            if record is not None and record.stamp == stamp:
                self.pending.pop(path, None)  # saved and put back before it settled
                continue
            if settle and self.pending.get(path) != stamp:
                self.pending[path] = stamp  # new to this scan: read it when the next one sees it unchanged
                continue
            self.pending.pop(path, None)
            latest, problems = self.load(path, display(path))
            if record is None:
                self.records[path] = _Record(stamp, latest, problems)
            else:
                record.stamp, record.latest, record.latest_problems = stamp, latest, problems
            changed = True
        return changed

    def compose(self) -> list[Problem]:
        """Choose the served version of every file (newest valid, else last good); return problems."""
        accepted: list[T] = []
        problems: list[Problem] = []
        for path in sorted(self.records):
            record = self.records[path]
            current = list(record.latest_problems)
            chosen: T | None = None
            if record.latest is not None:
                current = self.cross_check(record.latest, accepted)
                if not current:
                    chosen = record.latest
            if chosen is None and record.good is not None and not self.cross_check(record.good, accepted):
                chosen = record.good
            self._report(record, path, current, kept=chosen is not None)
            record.good = chosen
            if chosen is not None:
                accepted.append(chosen)
            problems += current
        return problems

    @staticmethod
    def _report(record: _Record[T], path: Path, problems: list[Problem], kept: bool) -> None:
        """Log each distinct set of problems once, not on every poll."""
        key = tuple(problems)
        if key == record.reported:
            return
        record.reported = key
        if not problems:
            log.info("knowledge file accepted: %s", path)
            return
        for problem in problems:
            log.error("knowledge file refused: %s", problem)
        if kept:
            log.warning("%s: keeping the last good version", path)
        else:
            log.warning("%s: no valid version, not served", path)

    def served(self) -> list[T]:
        return [r.good for _, r in sorted(self.records.items()) if r.good is not None]


def display(path: Path) -> str:
    """Path as shown in messages: relative to the working directory when possible."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


class KnowledgeHolder:
    """Owns the current :class:`Knowledge` and refreshes it when files change.

    ``current`` is always a complete, immutable snapshot; read it once per message.
    """

    def __init__(self, faq_dir: Path | str = "faq", intents_dir: Path | str = "intents",
                 catalog: Path | str | None = None, settings: MatcherSettings | None = None) -> None:
        self.faq_dir = Path(faq_dir)
        self.intents_dir = Path(intents_dir)
        self.settings = settings
        self.catalog, self.catalog_warning = read_catalog(self.faq_dir, catalog)
        if self.catalog_warning:
            log.warning(self.catalog_warning)
        self._faq: _Directory[LoadedItem] = _Directory(self.faq_dir, load_item_file, self._item_cross_check)
        self._intents: _Directory[IntentFragment] = _Directory(self.intents_dir, load_fragment_file, conflicts)
        self.problems: list[Problem] = []
        self._current = Knowledge.build([], merge([]), settings)
        self._generation = 0
        self.reload_if_changed()

    @property
    def current(self) -> Knowledge:
        return self._current

    def _item_cross_check(self, candidate: LoadedItem, accepted: list[LoadedItem]) -> list[Problem]:
        return check_catalog(candidate, self.catalog) + duplicate_aliases(candidate, accepted)

    def reload_if_changed(self, settle: bool = False) -> bool:
        """Poll both directories; rebuild and swap the snapshot when something changed. With
        ``settle`` (the background watch), a changed file is read once a second poll finds it unchanged."""
        faq_changed = self._faq.scan(settle)
        intents_changed = self._intents.scan(settle)
        if not (faq_changed or intents_changed):
            return False
        self.problems = self._faq.compose() + self._intents.compose()
        items = [loaded.item for loaded in self._faq.served()]
        self._generation += 1
        self._current = Knowledge.build(items, merge(self._intents.served()), self.settings,
                                        version=str(self._generation))
        log.info("knowledge loaded: %d items, version %d, %d problem(s)", len(items), self._generation,
                 len(self.problems))
        return True

    async def watch(self, interval: float = 2.0, on_swap: Callable[[], None] | None = None) -> None:
        """Poll forever (cancel the task to stop). Errors are logged, never fatal to the app. An edit is
        served two polls after it is saved: the first sees it, the second finds it settled.
        ``on_swap`` runs after a new snapshot is in place (the service re-freezes its heap there)."""
        while True:
            await asyncio.sleep(interval)
            try:
                swapped = await asyncio.to_thread(self.reload_if_changed, True)
                if swapped and on_swap is not None:
                    on_swap()
            except Exception:  # noqa: BLE001 - a reload bug must not kill the bot
                log.exception("knowledge reload failed; still serving the previous version")


def read_catalog(faq_dir: Path, catalog: Path | str | None) -> tuple[Mapping[str, CatalogEntry] | None, str | None]:
    """The catalogue, or ``None`` plus a warning when it is missing (ids then checked against faq/)."""
    path = Path(catalog) if catalog else default_catalog_path(faq_dir)
    try:
        return load_catalog(path), None
    except FileNotFoundError:
        return None, f"catalogue not found at {path}; ids are checked against faq/ file names only"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"catalogue unreadable at {path} ({exc}); ids are checked against faq/ file names only"


def check_directories(faq_dir: Path, intents_dir: Path, catalog: Path | str | None
                      ) -> tuple[list[Problem], list[str], int]:
    """Validate everything once (for ``faq check``): problems, warnings, number of item files.

    Warnings do not make the files invalid: the catalogue missing, and ``[cues]`` words that anchor
    nothing (as ``file:line: [field] message``), which only the index built from the valid files
    can tell."""
    holder_catalog, warning = read_catalog(faq_dir, catalog)
    warnings = [warning] if warning else []
    if not faq_dir.is_dir():
        return [Problem(str(faq_dir), None, None, "目录不存在")], warnings, 0
    faq: _Directory[LoadedItem] = _Directory(
        faq_dir, load_item_file,
        lambda c, acc: check_catalog(c, holder_catalog) + duplicate_aliases(c, acc))
    intents: _Directory[IntentFragment] = _Directory(intents_dir, load_fragment_file, conflicts)
    faq.scan()
    intents.scan()
    logger_level = log.level
    log.setLevel(logging.CRITICAL)  # compose() logs for the service; the command prints instead
    try:
        problems = faq.compose() + intents.compose()
    finally:
        log.setLevel(logger_level)
    known = {path.stem for path in faq.records}  # a broken file is reported on its own, not again here
    for fragment in intents.served():
        problems += unknown_ambiguous_ids(fragment, known)
    knowledge = Knowledge.build([loaded.item for loaded in faq.served()], merge(intents.served()))
    limit = knowledge.matcher.settings.anchor_max_items
    located = [w for fragment in intents.served()
               for w in unanchoring_cues(fragment, knowledge.matcher.cue_sharing, limit)]
    warnings += [str(w) for w in sorted(located, key=_problem_order)]
    return sorted(problems, key=_problem_order), warnings, len(faq.records)


def _problem_order(problem: Problem) -> tuple[str, int]:
    return (problem.file, problem.line or 0)


def load_knowledge(faq_dir: Path | str = "faq", intents_dir: Path | str = "intents",
                   catalog: Path | str | None = None, settings: MatcherSettings | None = None
                   ) -> tuple[Knowledge, KnowledgeHolder]:
    """One-shot load (match, eval, bench): the snapshot of valid files, and the holder for its
    ``problems`` and ``catalog_warning``."""
    holder = KnowledgeHolder(faq_dir, intents_dir, catalog=catalog, settings=settings)
    return holder.current, holder

