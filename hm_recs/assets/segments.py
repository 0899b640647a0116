"""Customer segments of week W: behaviour groups after the seed study, one primary segment per customer."""

import dagster as dg
import polars as pl

from hm_recs.assets.common import markdown_table, measured, png_markdown, preview
from hm_recs.configs import config_of, core_config
from hm_recs.core.segments import (
    BEHAVIOUR_SEGMENTS,
    COLD_START,
    SEGMENTS,
    SegmentConfig,
    assign_segments,
    overlaps,
    segment_indices,
    segment_sizes,
    thresholds,
)
from hm_recs.deploy import TWO_TOWER_PRIORITY
from hm_recs.partitions import SEGMENT_HISTORY_WEEKS, history_of, partition_week, weekly_partitions
from hm_recs.resources import PipelineSettings
from hm_recs.storage.reads import catalogue_tables
from hm_recs.storage.warehouse import PARTITIONED, Warehouse


class SegmentsConfig(config_of(SegmentConfig)):
    """The segmentation rules (`core.segments.SegmentConfig`); the window is the shared `segment_history_weeks`."""


def overlap_heatmap(matrix: pl.DataFrame) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = matrix.columns[1:]
    values = matrix.select(labels).to_numpy()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), matrix[matrix.columns[0]].to_list())
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:,}", ha="center", va="center", fontsize=7)
    ax.set_title("behaviour-group memberships (overlaps)")
    fig.tight_layout()
    value = png_markdown(fig)
    plt.close(fig)
    return value


@dg.asset(
    op_tags=TWO_TOWER_PRIORITY,
    partitions_def=weekly_partitions,
    group_name="segments",
    kinds={"duckdb", "polars"},
    metadata=PARTITIONED,
    deps=[history_of("transactions", SEGMENT_HISTORY_WEEKS), "customers", "articles"],
    check_specs=[
        dg.AssetCheckSpec(
            "one_primary_segment",
            asset="customer_segments",
            blocking=True,
            description="every customer exactly one known primary segment; no behaviour "
            "segment under the minimum size; cold start = customers without purchases",
        )
    ],
)
def customer_segments(
    context: dg.AssetExecutionContext, config: SegmentsConfig, pipeline_settings: PipelineSettings, warehouse: Warehouse
):
    """Bestseller followers, index loyalists, discount hunters, seasonal shoppers, default and cold start."""
    week = partition_week(context)
    segment_config = core_config(SegmentConfig, config)
    with measured(context, "customer_segments") as figures:
        customers, articles, transactions = catalogue_tables(warehouse, week, pipeline_settings.segment_history_weeks)
        indices = segment_indices(customers, transactions, articles, week, segment_config)
        cutoffs = thresholds(indices, segment_config)
        assignment = assign_segments(indices, cutoffs, segment_config)
    table = assignment.join(indices.drop("n_purchases"), on="customer_id", how="left").with_columns(
        pl.lit(week).alias("week")
    )
    sizes = segment_sizes(assignment)
    matrix = overlaps(assignment)
    yield dg.Output(
        table,
        metadata={
            "rows": table.height,
            "sizes": dg.MetadataValue.md(markdown_table(sizes)),
            "thresholds": dg.MetadataValue.json(
                {k: (None if v == float("inf") else round(v, 4)) for k, v in cutoffs.items()}
            ),
            "priority": ", ".join(segment_config.priority),
            "overlaps": overlap_heatmap(matrix),
            **{f"size/{r[0]}": int(r[1]) for r in sizes.select(sizes.columns[:2]).iter_rows()},
            "preview": preview(table),
            **figures,
        },
    )
    per_segment = dict(assignment.group_by("segment").len().iter_rows())
    too_small = {
        s: n for s, n in per_segment.items() if s in BEHAVIOUR_SEGMENTS and n < segment_config.min_segment_size
    }
    cold = int((assignment["n_purchases"] == 0).sum())
    yield dg.AssetCheckResult(
        passed=bool(
            assignment.height == customers.height
            and assignment["customer_id"].n_unique() == customers.height
            and set(per_segment) <= set(SEGMENTS)
            and not too_small
            and per_segment.get(COLD_START, 0) == cold
        ),
        metadata={
            "customers": customers.height,
            "assigned": assignment.height,
            "segments": dg.MetadataValue.json(per_segment),
            "under_minimum": dg.MetadataValue.json(too_small),
            "folded_or_empty": dg.MetadataValue.json([s for s in BEHAVIOUR_SEGMENTS if s not in per_segment]),
        },
    )
