"""``resident-bot db upgrade|downgrade``: schema migrations."""

from __future__ import annotations

import argparse

from bot.cli import config_from_args
from bot.storage.migrate import downgrade, upgrade


def _upgrade(args: argparse.Namespace) -> int:
    url = config_from_args(args).database.url
    upgrade(url, args.revision)
    print(f"database upgraded to {args.revision}")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    url = config_from_args(args).database.url
    downgrade(url, args.revision)
    print(f"database downgraded to {args.revision}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = sub.add_parser("db", help="数据库迁移 (schema migrations)")
    actions = db.add_subparsers(dest="db_command", required=True)
    up = actions.add_parser("upgrade", help="upgrade the schema (default: to the newest)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_upgrade)
    down = actions.add_parser("downgrade", help="downgrade the schema")
    down.add_argument("revision", nargs="?", default="base")
    down.set_defaults(func=_downgrade)
