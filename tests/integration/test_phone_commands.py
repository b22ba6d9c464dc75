"""Phone-friendly commands end to end: real workers, the fake Signal server, the fake `claude`."""

from __future__ import annotations

import pytest

from tests.integration.conftest import System

# About processes and the wire, not the database: one backend (SQLite) suffices; the database tests run on both.
pytestmark = pytest.mark.transport


def test_a_project_name_relative_to_the_roots_opens_a_session(system: System) -> None:
    workers = system.worker()
    system.publisher.send("/session start shop")
    (started,) = system.wait_reply(lambda t: t.startswith("Started session"))
    assert f"in {(system.projects / 'shop').resolve()}." in started
    system.publisher.send("/session start nowhere")
    (refused,) = system.wait_reply(lambda t: t.startswith("Could not start a session in nowhere"))
    assert "There is no 'nowhere' in the project roots" in refused
    log = workers.log()  # started as `celery -A claude_signal worker`: the library noise is quiet there too
    assert "succeeded in" in log and "HTTP Request" not in log


def test_typos_get_a_suggestion_and_refusals_name_the_path_once(system: System) -> None:
    system.worker()
    system.publisher.send("/sesion list")
    system.wait_reply(lambda t: t.startswith("I don't know /sesion. Did you mean /session list?"))
    outside = "/usr/share"
    system.publisher.send(f"/session start {outside}")
    (refused,) = system.wait_reply(lambda t: t.startswith("Could not start a session in"))
    assert refused.count(outside) == 1, refused
