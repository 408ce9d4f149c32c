"""``resident-bot serve``: migrate, then serve the webhook with one or more worker processes.

Several workers share the port with SO_REUSEPORT; each is a full copy of the app. Work that must run
once per deployment (the outbox sender is lease-safe, the scheduler is not) runs in worker 0 only.

A stop (SIGINT, SIGTERM) is never left to the default action, whenever it comes: the parent handles
it from before the workers are forked (and passes it on to every worker, also one forked after it
came); a worker is forked with both signals blocked, so they stay pending until its event loop has
its handlers. A worker stopped while it starts up finishes starting, then shuts down the normal way
(journal flushed, schedulers stopped) — instead of dying of SIGTERM without any shutdown, or of
Ctrl-C with a KeyboardInterrupt traceback, as a worker (or the parent, while forking) used to.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys

from bot.cli import config_from_args
from bot.config import Config, replace
from bot.heap import freeze_long_lived
from bot.logs import setup_logging
from bot.storage.migrate import upgrade

log = logging.getLogger(__name__)


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
#: Stop signals this process received before an event loop handled them (see :func:`run`).
_stops_received: list[int] = []


def _hold_stop_signals() -> None:
    """Block SIGINT/SIGTERM in the calling thread, so they stay pending; a process forked from this
    thread starts with them blocked (its only thread). Other threads of this process are not covered:
    a signal may land on one of them, which is why :func:`run` also installs a handler."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def _release_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


async def _serve(config: Config, worker: int) -> None:
    from aiohttp import web

    from bot.app import build_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    _release_stop_signals()  # a stop held since the fork is delivered now, to ``stop.set``
    if _stops_received:  # or one the process's handler took before the loop had its own
        stop.set()
    app = build_app(config, worker=worker)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        freeze_long_lived()  # the knowledge index above all; see bot.heap
        if not stop.is_set():  # stopped during start-up: accept no request only to cut it off
            site = web.TCPSite(runner, config.server.host, config.server.port,
                               reuse_port=config.server.workers > 1, backlog=1024)
            await site.start()
            log.info("worker %d serving on http://%s:%d", worker, config.server.host, config.server.port)
            await stop.wait()
    finally:
        await runner.cleanup()
    log.info("worker %d stopped", worker)


def _worker_main(config: Config, worker: int) -> None:
    _hold_stop_signals()  # until _serve's handlers are in place (a forked worker starts with them held)
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
    procs: list[multiprocessing.Process] = []

    def forward(signum: int, _frame: object) -> None:
        """Note the stop (for the worker loop of a single-process run) and pass it on to the workers."""
        _stops_received.append(signum)
        for p in procs:
            if p.pid:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:  # that worker has already exited
                    pass

    # Before anything is forked: a stop must not find SIGTERM's default action (the parent dies while
    # it forks) nor SIGINT's (KeyboardInterrupt). Blocking alone would not do: the migration's
    # database thread may still be ending and take the signal; Python runs the handler in this thread.
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    url = f"http://{config.server.host}:{config.server.port}"
    print(f"resident-bot on {url}  (webhook {url}/wechat"
          + (f", simulator {url}/simulator" if config.sandbox_mode else "") + ")", file=sys.stderr, flush=True)
    if config.server.workers == 1:
        _worker_main(config, 0)
        return 0
    procs.extend(multiprocessing.Process(target=_worker_main, args=(config, i), daemon=False)
                 for i in range(config.server.workers))
    _hold_stop_signals()  # forked with them held: pending in a worker until its loop handles them
    try:
        for p in procs:
            p.start()
    finally:
        _release_stop_signals()
    if _stops_received:  # a stop that came while they were being forked: to every one of them
        forward(_stops_received[-1], None)
    for p in procs:
        p.join()
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    for i, code in failed:
        log.error("worker %d exited with code %s", i, code)
    return 1 if failed else 0


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
