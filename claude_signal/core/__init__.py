"""Use cases on a unit of work: inbox and dispatch, sessions, turn control, turns, delivery, liveness, recovery,
schedules."""
