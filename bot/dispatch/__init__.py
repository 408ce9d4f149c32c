"""Dispatch: routes a typed resident event to the first feature handler that answers it.

Handlers run under a per-resident lock (one resident's messages are handled in order, as aiogram's
FSM middleware does) and get a :class:`Context` with the resident's conversation state, which lives
in storage, not in process memory.
"""

from bot.dispatch.context import Context, StateStore
from bot.dispatch.dispatcher import Dispatcher
from bot.dispatch.router import Router

__all__ = ["Context", "Dispatcher", "Router", "StateStore"]
