"""What Claude has cost: ``/cost`` for the session, today and this month, and the optional daily budget.

Figures come from each finished turn's ``total_cost_usd`` (one process per turn, so per turn), summed per
person over the sessions they own. Days and months are those of ``CLAUDE_SIGNAL_TIMEZONE``. Claude Code
computes the cost from token counts and list prices: under a subscription it is an estimate, not a bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DB

from claude_signal.config import Settings
from claude_signal.db.models import Session, Turn, utcnow
from claude_signal.host.timezone import zone
from claude_signal.rules.replies import plural


def period_starts(now: datetime, zone_name: str) -> tuple[datetime, datetime]:
    """Midnight today and the first of this month in the zone, as UTC instants. Pure."""
    local = now.astimezone(zone(zone_name))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    return day.astimezone(UTC), month.astimezone(UTC)


def spent_since(db: DB, owner: str, since: datetime) -> float:
    """Dollars the turns of ``owner``'s sessions that finished since ``since`` cost."""
    total = db.execute(select(func.coalesce(func.sum(Turn.cost_usd), 0.0))
                       .join(Session, Session.id == Turn.session_id)
                       .where(Session.owner == owner, Turn.finished_at >= since)).scalar_one()
    return float(total or 0.0)


@dataclass(frozen=True)
class Spend:
    today: float
    month: float


def spend(db: DB, owner: str, settings: Settings, now: datetime | None = None) -> Spend:
    day, month = period_starts(now or utcnow(), settings.timezone)
    return Spend(today=spent_since(db, owner, day), month=spent_since(db, owner, month))


def budget_refusal(db: DB, owner: str, settings: Settings, now: datetime | None = None) -> str | None:
    """Why a new turn may not run (the person's daily budget is spent), or None."""
    if settings.daily_budget is None:
        return None
    today = spend(db, owner, settings, now).today
    if today < settings.daily_budget:
        return None
    return (f"Not sent to Claude: today's budget of ${settings.daily_budget:.2f} is spent (${today:.4f} so far). "
            f"New messages go through again after midnight ({settings.timezone}); /cost shows the figures.")


def report(session: Session | None, figures: Spend, settings: Settings) -> str:
    """The ``/cost`` reply. Pure."""
    lines = ["Claude's cost (as Claude Code estimates it):"]
    if session is not None:
        lines.append(f"Session {session.id}: ${session.cost_usd:.4f} over {plural(session.turn_count, 'turn')}")
    lines.append(f"Today: ${figures.today:.4f} · this month: ${figures.month:.4f}")
    if settings.daily_budget is not None:
        left = max(0.0, settings.daily_budget - figures.today)
        lines.append(f"Daily budget: ${settings.daily_budget:.2f}, ${left:.4f} left today")
    return "\n".join(lines)
