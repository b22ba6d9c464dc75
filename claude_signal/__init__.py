"""claude-signal: drive Claude Code sessions on your own machines from Signal.

``celery -A claude_signal worker`` finds the Celery app in :mod:`claude_signal.celery`.
"""
