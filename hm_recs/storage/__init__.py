"""Storage: where the tables, files and model artefacts live and how the stages read them.

- `location`: a folder or S3 prefix (read, write, list, checksums); no Dagster: `core` may use it.
- `staged`: a table written in parts (Parquet) and loaded in one step; no Dagster.
- `warehouse`: the `Warehouse` interface and the tables' partitioning and column metadata.
- `duckdb_warehouse`, `parquet_warehouse`: its two implementations, each with its IO manager.
- `reads`: the named SQL reads the stages share.
"""
