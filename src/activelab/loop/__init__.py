"""The active-learning session: projects, ingest, export, rounds."""
