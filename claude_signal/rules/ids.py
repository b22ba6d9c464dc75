"""Short ids a person can type on a phone, and prefix matching for them."""

from __future__ import annotations

import secrets
import uuid


def new_session_id() -> str:
    """Eight lowercase hex characters: 4 billion values, short enough to type, a prefix usually suffices."""
    return secrets.token_hex(4)


def new_approval_id() -> str:
    return secrets.token_hex(3)


def new_claude_session_id() -> str:
    """Claude wants a lowercase UUIDv4 for ``--session-id``."""
    return str(uuid.uuid4())


def new_incarnation() -> str:
    return str(uuid.uuid4())


