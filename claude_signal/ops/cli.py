"""``claude-signal``: the one command a person runs. Subcommands stay thin and call into the package.

Any configuration problem stops the program with one line naming the setting (exit code 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from claude_signal.config import ConfigError, Settings, get_settings
from claude_signal.ops.quiet_logs import quiet_libraries
from claude_signal.ops.worker_planes import PLANES, plane_children, worker_argv


def _db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from claude_signal.db.migrate import upgrade

    upgrade(settings.sqlalchemy_url)
    print(f"database is up to date ({_redacted(settings.sqlalchemy_url)})")
    return 0








def _worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.plane == "both":
        from claude_signal.ops.supervisor import Supervisor

        supervisor = Supervisor(plane_children(settings, args.name, args.concurrency, dict(os.environ), None,
                                               args.celery_args))
        supervisor.install_signal_handlers()
        return supervisor.run()
    from celery.bin.celery import main as celery_main

    from claude_signal.wire.signing import load_key

    load_key(settings)  # a key problem is one line now, not a failure in every task later
    sys.argv = worker_argv(settings, args.plane, args.name, args.concurrency, args.celery_args)
    return int(celery_main() or 0)


def _check(settings: Settings, _args: argparse.Namespace) -> int:
    from claude_signal.host.project_paths import ClaudeUnavailable, check_claude

    print(f"host:          {settings.host}")
    print(f"data dir:      {settings.home}")
    print(f"database:      {_redacted(settings.sqlalchemy_url)}")
    print(f"broker:        {_redacted(settings.resolved_broker_url)}")
    from claude_signal.edge.signal_client import probe

    problem = probe(settings.signal_api)
    print(f"signal api:    {settings.signal_api} (account {settings.account or 'NOT SET'}): {problem or 'ok'}")
    from claude_signal.wire.senders import NOBODY

    print(f"authorized:    {', '.join(settings.authorized) or 'nobody: ' + NOBODY}")
    print(f"project roots: {', '.join(str(p) for p in settings.project_roots)}")
    from claude_signal.wire.signing import KEY_FILE, load_key

    load_key(settings)
    print(f"signing key:   {'CLAUDE_SIGNAL_SECRET_KEY' if settings.secret_key else settings.home / KEY_FILE}")
    try:
        print(f"claude:        {check_claude(settings.claude_bin, settings.host, extra=settings.claude_env)}")
    except ClaudeUnavailable as why:
        print(f"claude:        {why}")
        return 1
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a broker URL is not always a SQLAlchemy URL
        return url.split("@")[-1] if "@" in url else url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claude-signal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="create or migrate the schema").set_defaults(func=_db_upgrade)

    worker = sub.add_parser("worker", help="run this host's workers: the control plane and the turn plane")
    worker.add_argument("--plane", choices=("both", *PLANES), default="both",
                        help="both (default), or one of them in this process")
    worker.add_argument("--name", default="worker", help="node name prefix (a unique suffix and @host follow)")
    worker.add_argument("--concurrency", "-c", type=int, default=2,
                        help="control-plane processes (default 2); turn slots are CLAUDE_SIGNAL_MAX_TURNS")
    worker.add_argument("celery_args", nargs=argparse.REMAINDER, help="passed to celery worker")
    worker.set_defaults(func=_worker)

    sub.add_parser("check", help="show the configuration and test claude").set_defaults(func=_check)

    from claude_signal.ops import edge_commands as cli_edge

    cli_edge.add_commands(sub)
    return parser


def _logging() -> None:
    level = os.environ.get("CLAUDE_SIGNAL_LOG_LEVEL", "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(f"CLAUDE_SIGNAL_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR (not {level!r})")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(logging.getLevelNamesMapping()[level])


def _warn_if_nobody_authorized(settings: Settings, command: str) -> None:
    """Every message would be ignored: say so on the console, once, where the operator looks."""
    if command == "worker" and not settings.authorized:  # the listener logs its own line
        from claude_signal.wire.senders import NOBODY

        print(f"claude-signal {command}: warning: {NOBODY}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _logging()
        settings = get_settings()
        _warn_if_nobody_authorized(settings, args.command)
        return int(args.func(settings, args) or 0)
    except ConfigError as error:
        print(f"claude-signal: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
