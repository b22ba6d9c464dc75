"""Persistence: typed models, one engine per process, and Alembic migrations."""
