"""Alembic migrations of the API's own tables (members, API keys, manifests, audit index)."""
