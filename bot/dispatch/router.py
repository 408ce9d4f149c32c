"""A feature's handlers, each bound to event types and an optional predicate (aiogram-style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from bot.dispatch.context import Context
from bot.dispatch.events import Event, ResidentEvent, Response

Handler = Callable[[ResidentEvent, Context], Awaitable[Response | None]]
Predicate = Callable[[ResidentEvent], bool]


@dataclass(frozen=True)
class Route:
    kinds: tuple[type[Event], ...]
    when: Predicate | None
    handler: Handler

    def matches(self, event: ResidentEvent) -> bool:
        if self.kinds and not isinstance(event, self.kinds):
            return False
        return self.when is None or self.when(event)


class Router:
    """One router per feature; the dispatcher asks routers in the order ``app.py`` gives them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.routes: list[Route] = []

    def on(self, *kinds: type[Event], when: Predicate | None = None) -> Callable[[Handler], Handler]:
        """Register ``handler`` for events of ``kinds`` (all kinds when empty) satisfying ``when``.

        A handler returns a Response to answer, or None to let the next route try.
        """

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(tuple(kinds), when, handler))
            return handler

        return register
