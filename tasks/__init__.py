"""Celery tasks: each loads what it needs, calls the domain in ``claude_signal``, commits, publishes."""
