"""Revisions of the API's tables, tracked in their own version table ``api_alembic_version``."""
