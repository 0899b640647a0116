"""A table written part by part, for a weekly partition too big to hold in memory at full H&M scale.

The candidate sets hold every customer x about 100 articles (77M rows at full scale, over 10 GB as one
polars frame). A stage builds them a customer chunk at a time and appends each chunk here: each chunk becomes
one Parquet file in a local scratch folder (`TMPDIR`, or `directory`), and the chunk's frame can be dropped.
The stage then returns the `StagedTable` as its output; the warehouse IO managers load every part into the
partition in the partition's one write (the DuckDB file: `insert ... select from read_parquet` inside the
partition's transaction; the Parquet warehouse: the parts streamed into the partition's one object) and
delete the folder. Readers never see the parts, only the partition, whole or not at all.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

_DISCARD_TRIES = 20  # about a second


class StagedTable:
    """Parts of one table with one schema (the first part's; later parts are cast to it, and a part with other
    column names is refused). `rows` counts every appended row."""

    def __init__(self, name: str, directory: str | Path | None = None):
        self.name = name
        self.folder = Path(tempfile.mkdtemp(prefix=f"hm_recs_staged_{name}_", dir=directory))
        self.parts: list[Path] = []
        self.rows = 0
        self.schema: pl.Schema | None = None

    def append(self, frame: pl.DataFrame) -> None:
        if self.schema is None:
            self.schema = frame.schema
        elif frame.schema != self.schema:
            if set(frame.columns) != set(self.schema.names()):
                raise ValueError(
                    f"staged table {self.name}: part {len(self.parts)} has columns {frame.columns}, "
                    f"the table has {self.schema.names()}"
                )
            frame = frame.select(self.schema.names()).cast(dict(self.schema))
        path = self.folder / f"part-{len(self.parts):05d}.parquet"
        frame.write_parquet(path, statistics=True)
        self.parts.append(path)
        self.rows += frame.height

    def scan(self) -> pl.LazyFrame:
        """Every part, lazily (an empty frame with the schema when nothing holds rows)."""
        if not self.parts:
            raise ValueError(
                f"staged table {self.name} has no parts: append at least one (an empty frame keeps the schema)"
            )
        return pl.scan_parquet(self.parts)

    def parquet_list_sql(self) -> str:
        """The parts as a DuckDB list literal, for `read_parquet(...)`."""
        if not self.parts:
            raise ValueError(
                f"staged table {self.name} has no parts: append at least one (an empty frame keeps the schema)"
            )
        return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in self.parts) + "]"

    def discard(self) -> None:
        """The parts and the folder deleted. A failed polars sink may still be closing its output file in a
        background thread while the folder is removed (seen under load: the folder outlived the failed write),
        so the removal is retried briefly until the folder is gone."""
        for _ in range(_DISCARD_TRIES):
            shutil.rmtree(self.folder, ignore_errors=True)
            if not self.folder.exists():
                return
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"StagedTable({self.name!r}, {len(self.parts)} parts, {self.rows:,} rows, in {self.folder})"
