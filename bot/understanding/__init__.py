"""Understanding residents' messages: FAQ files, language data, normalisation, matching, intents.

Pure apart from the loader: nothing here knows WeChat, HTTP or the database. Everything the
conversation handler needs is below; these names are the stable API.

Loading and hot reload (``bot.understanding.loader``)::

    holder = KnowledgeHolder("faq", "intents", catalog=None)   # validates, logs refused files
    app_task = asyncio.create_task(holder.watch(2.0))           # polls mtimes; or holder.reload_if_changed()
    knowledge = holder.current                                  # immutable snapshot: read once per message
    holder.problems                                             # list[Problem] of refused files right now

    knowledge, holder = load_knowledge("faq", "intents")        # one-shot (CLI, tests, bench)

A file that fails validation is refused with a logged error and the last good version of *that* file
keeps serving; other files' edits still apply. ``catalog`` defaults to
``../shared/catalog/service-items.tsv`` relative to the project root (parent of ``faq/``); when it is
missing, ids are checked against file names only, with a warning.

The snapshot (``bot.understanding.knowledge.Knowledge``)::

    knowledge.items: Mapping[str, ServiceItem]
    knowledge.understand(text) -> Understanding(intent, aspect, match, pick, normalized, aspect_explicit)
    knowledge.pick(text, candidates) -> item id | None   # "2", "第二个", "最后一个", or a name/alias
    knowledge.match(text) -> MatchResult(action, item, candidates, score)
    knowledge.normalize(text) -> str
    knowledge.intents: IntentData                          # phrases, for handlers that need them
    knowledge.version: str                                 # changes on every reload

``Understanding.intent`` is one of ``faq`` (``match`` is answer or clarify), ``aspect`` (only an
aspect, e.g. "要好久": apply it to the item under discussion), ``pick`` (``pick`` is the 1-based
number), ``greeting``, ``thanks``, ``help``, ``handoff`` (转人工; ``match`` still says what about),
``unknown``. ``aspect`` is one of ``ASPECTS`` (materials — the default —, steps, where, time, fee,
conditions, proxy). ``MatchResult.action`` is ``answer`` (``item`` set, ``candidates == (item,)``),
``clarify`` (``item`` None, ``candidates`` 2–5 ids best first) or ``fallback`` (nothing applies,
``candidates`` empty). ``score`` is 0–100.

Value types (``bot.understanding.model``, frozen dataclasses): ``ServiceItem`` (id, name,
department, aliases, questions, conditions, steps, time_limit, fee, online, proxy, phone, basis,
where: ``Where`` (place, hours, address, note), materials: tuple of ``Material`` (name, form, count,
note)), ``MatchResult``, ``Understanding``, ``Problem`` (file, line, field, message).

Commands (``bot.understanding.commands``): ``resident-bot faq check``, ``resident-bot match
[--jsonl]``, ``resident-bot eval FILE.tsv`` and ``resident-bot eval --kfold 5`` (the self-check over the
FAQ files' own questions); none needs a config. File formats: ``faq/FORMAT.md``.
"""

from bot.understanding.knowledge import Knowledge
from bot.understanding.loader import KnowledgeHolder, load_knowledge
from bot.understanding.model import (
    ASPECTS,
    DEFAULT_ASPECT,
    INTENTS,
    MatchResult,
    Material,
    Problem,
    ServiceItem,
    Understanding,
    Where,
)

__all__ = [
    "ASPECTS", "DEFAULT_ASPECT", "INTENTS", "Knowledge", "KnowledgeHolder", "MatchResult", "Material",
    "Problem", "ServiceItem", "Understanding", "Where", "load_knowledge",
]
