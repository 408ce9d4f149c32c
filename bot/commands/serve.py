"""``resident-bot serve``: migrate, then serve the webhook with one or more worker processes.

Several workers share the port with SO_REUSEPORT; each is a full copy of the app. Work that must run
once per deployment (the outbox sender is lease-safe, the scheduler is not) runs in worker 0 only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sys

from bot.cli import config_from_args
from bot.config import Config, replace
from bot.logs import setup_logging
from bot.storage.migrate import upgrade

log = logging.getLogger(__name__)


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass


async def _serve(config: Config, worker: int) -> None:
    from aiohttp import web

    from bot.app import build_app

    app = build_app(config, worker=worker)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    _freeze_startup_objects()
    site = web.TCPSite(runner, config.server.host, config.server.port, reuse_port=config.server.workers > 1,
                       backlog=1024)
    await site.start()
    log.info("worker %d serving on http://%s:%d", worker, config.server.host, config.server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def _freeze_startup_objects() -> None:
    """Move everything built at start-up (the knowledge index above all) out of the collector's sight.

    Those hundreds of thousands of objects live as long as the process; without this every full
    collection walks them all, a ~90 ms pause every couple of seconds under load, which alone set the
    webhook's p99. (The Instagram approach: collect once, then ``gc.freeze``.)
    """
    gc.collect()
    gc.freeze()


def _worker_main(config: Config, worker: int) -> None:
    setup_logging(config.app.log_level, config.app.log_format, config.secrets())
    _install_uvloop()
    # Database threads (aiosqlite's) release and re-take the GIL around every SQLite step; with the
    # default 5 ms switch interval each re-take can wait behind the busy event loop for up to 5 ms.
    sys.setswitchinterval(0.0005)
    asyncio.run(_serve(config, worker))


def run(config: Config) -> int:
    """Migrate, start the sandbox if needed, then run the workers until SIGINT/SIGTERM."""
    setup_logging(config.app.log_level, config.app.log_format, config.secrets())
    upgrade(config.database.url)
    from bot.sandbox.launcher import sandbox_config

    config = sandbox_config(config)
    url = f"http://{config.server.host}:{config.server.port}"
    print(f"resident-bot on {url}  (webhook {url}/wechat"
          + (f", simulator {url}/simulator" if config.sandbox_mode else "") + ")", file=sys.stderr, flush=True)
    if config.server.workers == 1:
        _worker_main(config, 0)
        return 0
    procs = [multiprocessing.Process(target=_worker_main, args=(config, i), daemon=False)
             for i in range(config.server.workers)]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid:
                os.kill(p.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for p in procs:
        p.join()
    return 0


def _cmd(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    overrides: dict[str, object] = {}
    if args.port is not None:
        overrides["port"] = args.port
    if args.host is not None:
        overrides["host"] = args.host
    if args.workers is not None:
        overrides["workers"] = args.workers
    if overrides:
        config = replace(config, server=overrides)
    return run(config)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="启动服务 (migrate and serve the webhook)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.set_defaults(func=_cmd)
