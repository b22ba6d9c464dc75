"""Celery integration: worker signals and bootsteps, the task context, kombu patches."""
