"""Subcommands for the Signal edge: ``listen`` and ``up`` (added with the listener)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    return None
