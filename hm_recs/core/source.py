"""Reading the retailer's raw files (CSV or Parquet, H&M layout) into all-text frames.

Everything is read as text so that a malformed value never aborts ingestion: the validation stage types
each column and quarantines the rows whose values do not parse, naming the file and row. File-level
problems (missing file, empty file, wrong columns, unreadable bytes) raise `SourceError`.

Layout of a source folder (local or an S3 prefix):
    articles.{csv,parquet}                       catalogue snapshot
    customers.{csv,parquet}                      customer snapshot
    transactions_train.{csv,parquet}             full history (the H&M layout), and/or
    transactions/week=YYYY-MM-DD.{csv,parquet}   one file per week (weekly drops), preferred when present
    article_images.{parquet,csv}                 optional image vectors: Parquet with article_id and one
                                                 fixed-length list column, or CSV with article_id, v0..vN-1
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hm_recs.core.schema import SOURCE_COLUMNS, TABLE_COLUMNS
from hm_recs.core.weeks import week_end

FORMATS = ("parquet", "csv")
SNAPSHOT_FILES = {"articles": "articles", "customers": "customers"}
IMAGES_FILE = "article_images"
HISTORY_FILE = "transactions_train"
WEEK_FILE_DIR = "transactions"
WEEK_FILE_PATTERN = re.compile(r"^transactions/week=(\d{4}-\d{2}-\d{2})\.(csv|parquet)$")
INVALID_UTF8_MARK = "\ufffd"
"""What non-UTF-8 bytes become when read lossily; validation quarantines rows that contain it."""


class SourceError(ValueError):
    """A raw file that cannot be ingested at all, with the file and the rule it broke."""

    def __init__(self, file: str, rule: str, message: str):
        super().__init__(f"{file}: {message} [rule: {rule}]")
        self.file, self.rule, self.message = file, rule, message


@dataclass(frozen=True)
class SourceFile:
    """Which file of the source holds a table (for a week), and whether rows must be filtered by date."""

    table: str
    name: str  # relative name inside the source, e.g. "transactions/week=2020-09-16.csv"
    fmt: str
    history: bool  # True: a multi-week history file, rows are selected by t_dat


def week_file_name(week: dt.date, fmt: str) -> str:
    return f"{WEEK_FILE_DIR}/week={week.isoformat()}.{fmt}"


def resolve(table: str, names: set[str], week: dt.date | None = None, fmt: str | None = None) -> SourceFile:
    """Pick the file that holds `table` (for `week`) among the source's file `names`."""
    formats = (fmt,) if fmt else FORMATS
    if table in SNAPSHOT_FILES:
        for f in formats:
            if f"{SNAPSHOT_FILES[table]}.{f}" in names:
                return SourceFile(table, f"{SNAPSHOT_FILES[table]}.{f}", f, history=False)
        wanted = " or ".join(f"{SNAPSHOT_FILES[table]}.{f}" for f in formats)
        raise SourceError(wanted, "file_present", "file not found in the source")
    if table != "transactions":
        raise ValueError(f"unknown table {table!r}")
    if week is None:
        raise ValueError("transactions are read per week")
    for f in formats:
        if week_file_name(week, f) in names:
            return SourceFile(table, week_file_name(week, f), f, history=False)
    found = history_file(names, fmt)
    if found:
        return found
    raise SourceError(
        f"{week_file_name(week, formats[0])} or {HISTORY_FILE}.{formats[0]}",
        "file_present",
        f"no transactions file for week {week} in the source",
    )


def history_file(names: set[str], fmt: str | None = None) -> SourceFile | None:
    """The multi-week transactions file (H&M layout) among `names`, if there is one."""
    for f in (fmt,) if fmt else FORMATS:
        if f"{HISTORY_FILE}.{f}" in names:
            return SourceFile("transactions", f"{HISTORY_FILE}.{f}", f, history=True)
    return None


def weeks_in_listing(names: set[str]) -> list[dt.date]:
    """Weeks that have their own weekly transactions file."""
    return sorted({dt.date.fromisoformat(m.group(1)) for n in names if (m := WEEK_FILE_PATTERN.match(n))})


def read_columns(path: Path, fmt: str, display: str) -> list[str]:
    """The header of a file, with clear errors for unreadable or empty files."""
    if not path.exists():
        raise SourceError(display, "file_present", "file not found")
    if path.stat().st_size == 0:
        raise SourceError(display, "file_not_empty", "file is empty (0 bytes)")
    try:
        if fmt == "csv":
            return pl.read_csv(path, n_rows=0, infer_schema=False, encoding="utf8-lossy").columns
        return list(pl.read_parquet_schema(path).keys())
    except Exception as exc:  # polars raises several types for unreadable files
        raise SourceError(display, "file_readable", f"cannot read the {fmt} header: {exc}") from exc


def check_columns(columns: list[str], table: str, display: str, allow_extra: bool) -> list[str]:
    """Raise on missing columns (and on extra ones unless allowed); returns the extra columns."""
    expected = TABLE_COLUMNS[table]
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    if missing:
        raise SourceError(display, "columns_present", f"missing column(s) {missing}; expected {list(expected)}")
    if extra and not allow_extra:
        raise SourceError(
            display,
            "no_extra_columns",
            f"unexpected column(s) {extra}; expected exactly {list(expected)} "
            "(set allow_extra_columns to ingest and ignore them)",
        )
    return extra


def history_row_filter(week: dt.date) -> pl.Expr:
    """Rows of a history file that belong to `week`: dated inside it, or undated (quarantined later)."""
    day = pl.col("t_dat").str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    return day.is_between(pl.lit(week), pl.lit(week_end(week))) | day.is_null()


def read_raw(
    path: Path,
    source: SourceFile,
    *,
    week: dt.date | None = None,
    allow_extra_columns: bool = False,
) -> pl.DataFrame:
    """Read a raw file as text columns in the H&M order plus `source_file` and `source_row`.

    For a history file of transactions, only the rows of `week` (and rows with no parseable date)
    are kept; `source_row` still numbers the rows of the whole file.
    """
    display = source.name
    columns = read_columns(path, source.fmt, display)
    check_columns(columns, source.table, display, allow_extra_columns)
    expected = list(TABLE_COLUMNS[source.table])
    try:
        if source.fmt == "csv":
            lf = pl.scan_csv(
                path,
                infer_schema=False,
                encoding="utf8-lossy",
                row_index_name="source_row",
                row_index_offset=1,
            )
        else:
            lf = pl.scan_parquet(path).with_row_index("source_row", offset=1)
        lf = lf.select(
            [pl.col(c).cast(pl.String) for c in expected]
            + [pl.lit(display).alias("source_file"), pl.col("source_row").cast(pl.Int64)]
        )
        if source.history and week is not None:
            lf = lf.filter(history_row_filter(week))
        frame = lf.collect(engine="streaming")
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(display, "file_readable", f"cannot parse the file: {exc}") from exc
    if frame.height == 0 and not source.history:
        raise SourceError(display, "file_has_rows", "file has a header but no data rows")
    return frame.select(expected + list(SOURCE_COLUMNS))


def weeks_with_transactions(path: Path, source: SourceFile) -> list[dt.date]:
    """The weeks a transactions file has rows for (a weekly file: its own week only)."""
    if not source.history:
        match = WEEK_FILE_PATTERN.match(source.name)
        return [dt.date.fromisoformat(match.group(1))] if match else []
    from hm_recs.core.weeks import week_expr

    scan = (
        pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy") if source.fmt == "csv" else pl.scan_parquet(path)
    )
    days = scan.select(
        pl.col("t_dat").cast(pl.String).str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias("day")
    )
    weeks = days.select(week_expr(pl.col("day")).alias("week")).drop_nulls().unique().collect(engine="streaming")
    return sorted(weeks["week"].to_list())


def images_file(names: set[str], fmt: str | None = None) -> SourceFile | None:
    """The optional image vectors file among `names` (Parquet preferred), or None."""
    for f in (fmt,) if fmt else FORMATS:
        if f"{IMAGES_FILE}.{f}" in names:
            return SourceFile("article_images", f"{IMAGES_FILE}.{f}", f, history=False)
    return None


_VECTOR_COLUMN = re.compile(r"^v(\d+)$")


def read_images(path: Path, source: SourceFile) -> tuple[pl.DataFrame, int]:
    """The image vectors file as raw rows (article_id, image as the text of its values joined by commas,
    source_file, source_row) and the file's dimension: the number of `v<i>` columns of a CSV (they must be
    v0..vN-1), the fixed size of a Parquet array column, or the most common length of a Parquet list column.
    File-level problems raise `SourceError` (the week then builds without images)."""
    display = source.name
    columns = read_columns(path, source.fmt, display)
    if "article_id" not in columns:
        raise SourceError(display, "columns_present", f"no article_id column (columns: {columns[:8]})")
    try:
        if source.fmt == "csv":
            numbered = sorted((int(m.group(1)), c) for c in columns if (m := _VECTOR_COLUMN.match(c)))
            if not numbered or [i for i, _ in numbered] != list(range(len(numbered))):
                raise SourceError(
                    display, "columns_present", "expected vector columns v0..vN-1 beside article_id (e.g. v0,v1,v2)"
                )
            lf = pl.scan_csv(
                path, infer_schema=False, encoding="utf8-lossy", row_index_name="source_row", row_index_offset=1
            )
            image = pl.concat_str([pl.col(c).fill_null("") for _, c in numbered], separator=",")
            dim = len(numbered)
        else:
            schema = pl.read_parquet_schema(path)
            vectors = [c for c, t in schema.items() if isinstance(t, (pl.List, pl.Array)) and t.inner.is_numeric()]
            if "image" in vectors:
                vectors = ["image"]
            if len(vectors) != 1:
                raise SourceError(
                    display,
                    "columns_present",
                    f"expected one numeric list column of vectors beside article_id, found {vectors or 'none'}",
                )
            lf = pl.scan_parquet(path).with_row_index("source_row", offset=1)
            column = pl.col(vectors[0])
            if isinstance(schema[vectors[0]], pl.Array):
                column = column.arr.to_list()
                dim = schema[vectors[0]].size
            else:
                lengths = lf.select(column.list.len().alias("n")).collect()["n"]
                dim = int(lengths.mode().sort()[0]) if lengths.len() else 0
            image = column.cast(pl.List(pl.String)).list.eval(pl.element().fill_null("")).list.join(",")
        frame = lf.select(
            pl.col("article_id").cast(pl.String),
            image.alias("image"),
            pl.lit(display).alias("source_file"),
            pl.col("source_row").cast(pl.Int64),
        ).collect()
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(display, "file_readable", f"cannot parse the file: {exc}") from exc
    if frame.height == 0:
        raise SourceError(display, "file_has_rows", "file has a header but no data rows")
    return frame, dim
