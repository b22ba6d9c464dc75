"""Who may use the bot: one rule for the listener and the worker, failing closed.

``CLAUDE_SIGNAL_AUTHORIZED`` lists people by number (``+…``) or by Signal uuid. An empty list means nobody.
A uuid is the account itself and survives number changes, while a number can pass to someone else; so once
the list names any uuid, a frame's uuid must be listed, and a listed number no longer vouches for a frame
whose uuid is unknown (an authorized number with another uuid is rejected). With numbers only, the number
decides.
"""

from __future__ import annotations

from collections.abc import Collection

NOBODY = ("CLAUDE_SIGNAL_AUTHORIZED is empty: nobody is authorized, so every message is ignored; "
          "set it to your Signal number")


def is_number(identifier: str) -> bool:
    return identifier.startswith("+")


def authorized(listed: Collection[str], number: str | None, uuid: str | None) -> bool:
    """Whether a frame from ``number``/``uuid`` names an authorized person (see the module docstring)."""
    if uuid and uuid in listed:
        return True
    if not number or number not in listed:
        return False
    return uuid is None or not any(not is_number(entry) for entry in listed)
