"""What the listener's journal costs: publishing N messages through the spool and forwarder thread
versus publishing them straight to the broker, both against the same private Redis, in this process.

    .venv/bin/python bench/listener_spool.py --messages 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from claude_signal.edge.journal import Spool
from claude_signal.edge.listener import Forwarder
from claude_signal.edge.publisher import InboundPublisher
from claude_signal.wire.inbound import InboundMessage
from tests.harness import RedisServer, wait_until


def messages(n: int, offset: int) -> list[InboundMessage]:
    return [InboundMessage.build(sender="alice", conversation="alice", timestamp=offset + i, text=f"message {i}")
            for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis", appendonly=False).start()
        client = redis.client()
        publisher = InboundPublisher(redis.url)
        try:
            publisher.publish(messages(1, 0)[0])  # connect once outside the timing
            client.delete("shared")
            batch = messages(args.messages, 10_000)
            started = time.perf_counter()
            for msg in batch:
                publisher.publish(msg)
            direct = time.perf_counter() - started
            client.delete("shared")

            forwarder = Forwarder(Spool(tmp / "spool.jsonl"), publisher).start()
            batch = messages(args.messages, 100_000)
            started = time.perf_counter()
            for msg in batch:
                forwarder.submit(msg)
            accepted = time.perf_counter() - started
            wait_until(lambda: client.llen("shared") == args.messages, timeout=120, interval=0.005)
            spooled = time.perf_counter() - started
            forwarder.stop()
        finally:
            publisher.close()
            redis.stop()
    n = args.messages
    print(f"direct publish:                    {n / direct:8.0f} msg/s")
    print(f"through the spool (to the broker): {n / spooled:8.0f} msg/s")
    print(f"handler time per message (journal, fsync): {accepted / n * 1000:.3f} ms")
    print(f"ratio spooled/direct: {direct / spooled:.2f}")


if __name__ == "__main__":
    main()
