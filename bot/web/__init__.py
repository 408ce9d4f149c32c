"""Browser-facing pages. In the sandbox: the phone-like chat simulator (:mod:`bot.web.simulator`)."""

from bot.web.simulator import setup_simulator

__all__ = ["setup_simulator"]
