"""The ``resident-bot`` command. Each capability contributes its own subcommands module.

Subcommand modules expose ``register(subparsers)``; each parser sets ``func`` to a callable taking
the parsed args and returning an exit code. Config is loaded lazily by the commands that need it, so
``match`` and ``faq check`` work with nothing but ``faq/`` and ``intents/``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from bot.config import Config, ConfigError, load_config

# Modules that add subcommands; a module that does not exist yet is skipped.
COMMAND_MODULES = (
    "bot.commands.serve",
    "bot.commands.db",
    "bot.commands.chat",
    "bot.commands.menu",
    "bot.understanding.commands",
    "bot.commands.faq_review",  # after bot.understanding.commands: adds to its ``faq`` command
    "bot.commands.tickets",
    "bot.commands.notices",
)


def config_from_args(args: argparse.Namespace) -> Config:
    """Load config from ``--config`` (or ``config.toml`` when present) plus the environment."""
    from pathlib import Path

    path = args.config or ("config.toml" if Path("config.toml").exists() else None)
    return load_config(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resident-bot", description="社区居民服务公众号机器人")
    parser.add_argument("--config", "-c", help="config file (TOML); default ./config.toml if present")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `resident-bot eval … | head`: the reader left early, which is not our error; point stdout at
        # /dev/null so the interpreter's final flush does not raise again (Python docs, "SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
