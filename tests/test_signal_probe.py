"""``up`` and ``check`` say what is wrong with signal-cli-rest-api instead of letting signalbot retry mutely."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from claude_signal.edge.signal_client import probe
from tests.fakes.signal_rest import FakeSignalServer
from tests.harness import free_port


@pytest.fixture
def fake() -> Iterator[FakeSignalServer]:
    server = FakeSignalServer().start()
    yield server
    server.stop()


def test_a_json_rpc_server_of_a_recent_version_will_do(fake: FakeSignalServer) -> None:
    assert probe(fake.url) is None


def test_wrong_mode_is_named(fake: FakeSignalServer) -> None:
    fake.about_mode = "normal"
    assert "needs MODE=json-rpc" in (probe(fake.url) or "")


def test_old_version_is_named(fake: FakeSignalServer) -> None:
    fake.about_version = "0.95"
    assert "0.101 or newer" in (probe(fake.url) or "")


def test_unreachable_server_is_named() -> None:
    assert "not reachable" in (probe(f"http://127.0.0.1:{free_port()}", timeout=1) or "")
