"""The Alembic revisions of the store schema, one module per schema version (loaded by Alembic, not imported)."""
