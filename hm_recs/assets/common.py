"""Helpers shared by the asset modules: stored-partition reads, metadata, measured stages."""

import base64
import collections
import contextlib
import io
from collections.abc import Iterator

import dagster as dg
import polars as pl

from hm_recs.core.profiling import StageMeter


def customer_chunks(customer_ids: pl.Series, size: int) -> Iterator[pl.Series]:
    """The distinct customer ids, sorted, `size` at a time: the unit of work of the stages whose rows grow with
    customers x candidates (memory is one chunk's rows, whatever the number of customers)."""
    ids = customer_ids.unique().sort()
    for start in range(0, ids.len(), size):
        yield ids.slice(start, size)


def tally(frame: pl.DataFrame, column: str) -> collections.Counter:
    """Rows per value of `column`, as plain Python counts. What a stage keeps across customer chunks must not
    be polars frames derived from a chunk: their strings are views into the chunk's buffers, so a small
    group-by result kept per chunk keeps every chunk's rows alive (`recommendations` grew by about 0.8 GB
    per 100k-customer chunk at full size, to 15.2 GiB)."""
    return collections.Counter(dict(frame.group_by(column).len().iter_rows()))


def detached(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy of `frame` that shares no buffer with the frames it was derived from (see `tally`): for a preview
    kept across chunks, or a filtered or sorted subset kept while its source is let go (`ranker_model` keeps
    each earlier week's down-sampled tenth of a labelled set). Numbers are copied by a gather; strings by the
    round trip through Arrow's classic string layout, which writes the kept strings into a new buffer."""
    copied = frame.select(pl.all().gather(pl.int_range(pl.len())))
    return pl.from_arrow(copied.to_arrow(compat_level=pl.CompatLevel.oldest())).cast(frame.schema)


def markdown_table(frame: pl.DataFrame, limit: int = 10, digits: int = 4) -> str:
    if frame.width == 0:
        return "_(empty)_"
    head = frame.head(limit)
    rows = [
        [f"{v:.{digits}f}" if isinstance(v, float) else ("" if v is None else str(v)) for v in r]
        for r in head.iter_rows()
    ]
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * head.width]
    lines += ["| " + " | ".join(x.replace("|", "/") for x in r) + " |" for r in rows]
    if frame.height > limit:
        lines.append(f"\n_{frame.height - limit} more rows_")
    return "\n".join(lines)


def preview(frame: pl.DataFrame, limit: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(frame, limit))


def png_markdown(fig) -> dg.MetadataValue:
    """A matplotlib figure as an inline image in a markdown metadata value."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})")


@contextlib.contextmanager
def measured(context: dg.AssetExecutionContext, stage: str) -> Iterator[dict]:
    """Time and peak RSS of a stage, logged and returned as metadata (filled in on exit)."""
    figures: dict = {}
    with StageMeter() as meter:
        yield figures
    figures.update({"stage_seconds": round(meter.seconds, 3), "peak_rss_mb": meter.peak_rss_mb})
    context.log.info(f"{stage}: {meter.seconds:.2f} s, peak RSS {meter.peak_rss_mb} MB")
