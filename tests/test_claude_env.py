"""The environment a ``claude`` child gets: the allowlist, the extras the operator names, and what never passes."""

from __future__ import annotations

from claude_signal.claude.driver import build_env
from claude_signal.claude.environment import claude_env
from claude_signal.config import load_settings

WORKER = {
    "PATH": "/usr/bin", "HOME": "/home/u", "USER": "u", "LOGNAME": "u", "SHELL": "/bin/bash", "TERM": "xterm",
    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TMPDIR": "/tmp", "ANTHROPIC_API_KEY": "sk",
    "ANTHROPIC_BASE_URL": "http://x", "CLAUDE_CODE_USE_BEDROCK": "0", "CLAUDE_CONFIG_DIR": "/c",
    "DISABLE_AUTOUPDATER": "1", "https_proxy": "http://p", "HTTP_PROXY": "http://p", "no_proxy": "localhost",
    "SSH_AUTH_SOCK": "/s",
    # never
    "CLAUDECODE": "1", "CLAUDE_SIGNAL_DATABASE_URL": "postgresql://u:pw@db/x", "CLAUDE_SIGNAL_BROKER_URL": "r",
    "CLAUDE_SIGNAL_FLOWER_AUTH": "a:b", "CLAUDE_SIGNAL_SECRET_KEY": "k", "POSTGRES_PASSWORD": "pw",
    "FLOWER_BASIC_AUTH": "a:b", "REDIS_PASSWORD": "pw", "AWS_SECRET_ACCESS_KEY": "aws",
    "GOOGLE_APPLICATION_CREDENTIALS": "/g.json", "DATABASE_URL": "x", "PYTHONPATH": "/p", "VIRTUAL_ENV": "/v",
}
NEVER = {"CLAUDECODE", "POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH", "REDIS_PASSWORD", "AWS_SECRET_ACCESS_KEY",
         "GOOGLE_APPLICATION_CREDENTIALS", "DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV"}


def test_only_the_allowlist_passes() -> None:
    env = claude_env(WORKER)
    assert set(env) == set(WORKER) - NEVER - {k for k in WORKER if k.startswith("CLAUDE_SIGNAL_")}
    assert env["ANTHROPIC_API_KEY"] == "sk" and env["PATH"] == "/usr/bin"


def test_extras_pass_but_never_the_bots_settings_or_passwords() -> None:
    env = claude_env(WORKER, ["PYTHONPATH", "CLAUDE_SIGNAL_DATABASE_URL", "POSTGRES_PASSWORD", "CLAUDECODE",
                              "NOT_SET"])
    assert env["PYTHONPATH"] == "/p"
    assert not {"CLAUDE_SIGNAL_DATABASE_URL", "POSTGRES_PASSWORD", "CLAUDECODE", "NOT_SET"} & set(env)


def test_cloud_credentials_only_for_the_cloud_claude_uses() -> None:
    assert "AWS_SECRET_ACCESS_KEY" not in claude_env(WORKER)
    bedrock = claude_env({**WORKER, "CLAUDE_CODE_USE_BEDROCK": "1"})
    assert bedrock["AWS_SECRET_ACCESS_KEY"] == "aws" and "GOOGLE_APPLICATION_CREDENTIALS" not in bedrock
    vertex = claude_env({**WORKER, "CLAUDE_CODE_USE_VERTEX": "true", "CLOUD_ML_REGION": "us-east5"})
    assert vertex["GOOGLE_APPLICATION_CREDENTIALS"] == "/g.json" and vertex["CLOUD_ML_REGION"] == "us-east5"
    assert "AWS_SECRET_ACCESS_KEY" not in vertex


def test_driver_uses_the_allowlist() -> None:
    assert build_env(WORKER) == claude_env(WORKER)
    assert build_env(WORKER, ("VIRTUAL_ENV",))["VIRTUAL_ENV"] == "/v"


def test_setting_is_a_comma_separated_list() -> None:
    assert load_settings(claude_env=" A_B, C ,,").claude_env == ["A_B", "C"]
