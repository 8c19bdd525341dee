"""What every stage shares: errors, the typed params, the record schema, progress bars, dvc.yaml deps, and scratch
space for work larger than memory (DuckDB and SQLite databases, spill files)."""
