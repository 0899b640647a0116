"""The week's ranking inputs, built once, and scoring with a stored ranker.

`ranking_inputs` builds week W's `RankingInputs` (`core.ranking_features.week_inputs`, over the pipeline's input
windows) and the lists that complete short ones, and stores them as two tables (`core/stored_inputs.py`): one
row per customer (`ranking_inputs`) and one row for the week (`ranking_week_inputs`). Their readers:
`recommendations` (week W's), `evaluation_report` (week W-1's, with W-1's ranker) and `ranker_model` (the week
before each labelled week). Each reads the week row whole and the customer rows of the chunk it scores only, so
no reader holds every customer's inputs, nor the history they were built from.
"""

import dataclasses
import datetime as dt
from collections.abc import Callable

import dagster as dg
import polars as pl

from hm_recs.assets.common import customer_chunks, detached, measured, preview
from hm_recs.core.baselines import BaselineConfig, TopUpLists
from hm_recs.core.metrics import K
from hm_recs.core.ranking_features import InputWindows, RankingInputs, ranking_features, week_inputs
from hm_recs.core.stored_inputs import (
    CUSTOMER_PARTS,
    WeekInputs,
    customer_table,
    inputs_figures,
    inputs_of,
    week_table,
)
from hm_recs.deploy import LARGE_MEMORY_TAG, LARGE_STEP_TAGS, RANKING_PRIORITY, scoring_threads
from hm_recs.partitions import SEGMENT_HISTORY_WEEKS, history_of, partition_week, weekly_partitions
from hm_recs.registry import ModelRegistry
from hm_recs.resources import PipelineSettings
from hm_recs.storage.reads import catalogue_tables, customer_rows, partition_rows
from hm_recs.storage.staged import StagedTable
from hm_recs.storage.warehouse import PARTITIONED, Warehouse

CUSTOMER_TABLE, WEEK_TABLE = "ranking_inputs", "ranking_week_inputs"
INPUTS = [CUSTOMER_TABLE, WEEK_TABLE]
"""The two tables, for the readers' declared dependencies."""


class RankingInputsConfig(dg.Config):
    chunk_customers: int = 100_000  # customers whose rows are nested and staged at once


def top_up_lists(customers, transactions, articles, week: dt.date) -> TopUpLists:
    """What completes the ranker's short lists at `week`, from the transactions its inputs are built from."""
    return TopUpLists.build(customers, transactions, articles, week, BaselineConfig(K))


def _stage_customer_table(inputs: RankingInputs, customer_ids: pl.Series, chunk_customers: int):
    """The customer table staged one chunk of customers at a time (memory: the inputs and one chunk's nested
    rows): the staged table, the customers of the week without a row, and the first rows."""
    table, missing, first = StagedTable(CUSTOMER_TABLE), 0, None
    for chunk in customer_chunks(customer_ids, chunk_customers):
        rows = customer_table(inputs, chunk)
        missing += chunk.len() - rows.height
        first = detached(rows.head(5)) if first is None else first
        table.append(rows.with_columns(pl.lit(inputs.week).alias("week")))
    if first is None:  # no customers: the table keeps its schema
        first = customer_table(inputs, customer_ids)
        table.append(first.with_columns(pl.lit(inputs.week).alias("week")))
    return table, missing, first


@dg.multi_asset(
    outs={
        CUSTOMER_TABLE: dg.AssetOut(
            metadata=PARTITIONED,
            kinds={"polars", "duckdb"},
            description="Week W's ranking inputs of each customer: the customer's features and purchase counts "
            "(`core/stored_inputs.py`), read a chunk of customers at a time by the ranker's scorers.",
        ),
        WEEK_TABLE: dg.AssetOut(
            metadata=PARTITIONED,
            kinds={"duckdb"},
            description="Week W's customer-independent ranking inputs in one row: the articles' features, the age "
            "groups' popularity, the top-up lists and the windows they were built over.",
        ),
    },
    partitions_def=weekly_partitions,
    group_name="ranking",
    deps=[history_of("transactions", SEGMENT_HISTORY_WEEKS), "customers", "articles"],
    op_tags={**LARGE_STEP_TAGS, **RANKING_PRIORITY, **LARGE_MEMORY_TAG},
    check_specs=[
        dg.AssetCheckSpec(
            "every_customer_finite_inputs",
            asset=CUSTOMER_TABLE,
            blocking=True,
            description="one row per customer of the week's customers table; no NaN or infinite value in it",
        ),
        dg.AssetCheckSpec(
            "every_article_finite_inputs",
            asset=WEEK_TABLE,
            blocking=True,
            description="one row per catalogue article, a complete fallback list; no NaN or infinite value",
        ),
    ],
)
def ranking_inputs(
    context: dg.AssetExecutionContext,
    config: RankingInputsConfig,
    pipeline_settings: PipelineSettings,
    warehouse: Warehouse,
):
    """Week W's ranking inputs as of W, built once for every customer over the pipeline's input windows, with
    the top-up lists: what `recommendations`, `evaluation_report` and `ranker_model` score with."""
    week = partition_week(context)
    windows = pipeline_settings.input_windows()
    with measured(context, "ranking_inputs") as stage:
        customers, articles, transactions = catalogue_tables(
            warehouse, week, max(windows.feature_weeks, windows.segment_weeks)
        )
        inputs = week_inputs(customers, articles, transactions, week, windows)
        top_up = top_up_lists(customers, transactions, articles, week)
        del transactions  # memory: the history is not needed once the inputs are built
        table, missing, first = _stage_customer_table(inputs, customers["customer_id"], config.chunk_customers)
        week_row = week_table(inputs, top_up, windows).with_columns(pl.lit(week).alias("week"))
        figures = inputs_figures(inputs, top_up)
    context.log.info(f"ranking inputs of week {week}: {figures}")
    yield dg.Output(
        table,
        output_name=CUSTOMER_TABLE,
        metadata={
            **{name: rows for name, rows in figures.items() if name.startswith("rows/")},
            "windows": dg.MetadataValue.json(dataclasses.asdict(windows)),
            "preview": preview(
                first.select(
                    pl.exclude(CUSTOMER_PARTS).exclude("^_.*$"),
                    *(pl.col(p).list.len().alias(f"n_{p}") for p in CUSTOMER_PARTS),
                )
            ),
            **stage,
        },
    )
    yield dg.Output(
        week_row, output_name=WEEK_TABLE, metadata={"windows": dg.MetadataValue.json(dataclasses.asdict(windows))}
    )
    yield _customer_check(customers.height, table.rows, missing, figures)
    yield _week_check(articles["article_id"].n_unique(), top_up, figures)


def _customer_check(customers: int, rows: int, missing: int, figures: dict) -> dg.AssetCheckResult:
    non_finite = figures["non_finite/customer_table"]
    return dg.AssetCheckResult(
        check_name="every_customer_finite_inputs",
        asset_key=CUSTOMER_TABLE,
        passed=bool(missing == 0 and rows == customers and non_finite == 0),
        metadata={
            "customers": customers,
            "customer_rows": rows,
            "customers_without_a_row": missing,
            "non_finite_values": non_finite,
        },
    )


def _week_check(catalogue: int, top_up: TopUpLists, figures: dict) -> dg.AssetCheckResult:
    non_finite = figures["non_finite/week_table"]
    return dg.AssetCheckResult(
        check_name="every_article_finite_inputs",
        asset_key=WEEK_TABLE,
        passed=bool(figures["rows/articles"] == catalogue and top_up.fallback.height >= top_up.k and non_finite == 0),
        metadata={
            "catalogue_articles": catalogue,
            "article_rows": figures["rows/articles"],
            "fallback_articles": top_up.fallback.height,
            "non_finite_values": non_finite,
        },
    )


@dataclasses.dataclass(frozen=True)
class StoredInputs:
    """A week's stored ranking inputs: the week row, read once, and any chunk's customer rows on demand."""

    warehouse: Warehouse
    week: WeekInputs

    @classmethod
    def load(cls, warehouse: Warehouse, week: dt.date, windows: InputWindows) -> "tuple[StoredInputs | None, str]":
        """The stored inputs of `week` when they were built over `windows`, else None; and, either way, where a
        scorer's inputs come from (for its metadata)."""
        row = partition_rows(warehouse, WEEK_TABLE, week, "* exclude (week)")
        if not row.height:
            return None, f"built here: no {WEEK_TABLE} stored for week {week}"
        stored = WeekInputs.of(week, row)
        if stored.windows != windows:
            return None, f"built here: week {week}'s stored inputs are over {stored.windows}, not {windows}"
        return cls(warehouse, stored), f"stored ({CUSTOMER_TABLE} of week {week})"

    def of(self, customer_ids: pl.Series) -> RankingInputs:
        """The inputs of these customers only (their rows of the customer table; the week's tables whole)."""
        ids = customer_ids.unique().sort()
        rows = customer_rows(self.warehouse, CUSTOMER_TABLE, self.week.week, ids, "* exclude (week)")
        if not rows.width:  # no customers asked for: the table's columns, no rows
            rows = self.warehouse.query(f"select * exclude (week) from {self.warehouse.table(CUSTOMER_TABLE)} limit 0")
        return inputs_of(self.week, rows)


def load_ranker(registry: ModelRegistry, week: dt.date):
    """Week `week`'s ranker (RankerResult), the input windows its features were built with, and its artefact
    hash; a clear failure when that week's ranker was never stored (not built, or refused by its gate)."""
    from hm_recs.models.ranker import RankerResult

    state, artefact_hash = registry.load("ranker", week)
    return RankerResult.load(state), InputWindows(**state["windows"]), artefact_hash


@dataclasses.dataclass
class ServingRanker:
    """Week W's stored ranker with what scoring with it needs: the ranking inputs as of W over the windows recorded
    in its artefact (so every scorer builds the matrix training built), read per scored chunk of customers from
    `ranking_inputs` (or built here when they were not stored over those windows), and the top-up lists."""

    ranker: object  # models.ranker.RankerResult
    digest: str
    inputs: Callable[[pl.Series], RankingInputs]  # customer ids -> their inputs
    top_up: TopUpLists
    inputs_origin: str  # "stored (...)" or "built here: why"

    @classmethod
    def load(cls, warehouse: Warehouse, registry: ModelRegistry, week: dt.date) -> "ServingRanker":
        ranker, windows, digest = load_ranker(registry, week)
        stored, origin = StoredInputs.load(warehouse, week, windows)
        if stored is not None:
            return cls(ranker, digest, stored.of, stored.week.top_up, origin)
        customers, articles, transactions = catalogue_tables(
            warehouse, week, max(windows.feature_weeks, windows.segment_weeks)
        )
        built = week_inputs(customers, articles, transactions, week, windows)
        top_up = top_up_lists(customers, transactions, articles, week)
        return cls(ranker, digest, lambda _: built, top_up, origin)

    def rank(
        self, candidates: pl.DataFrame, k: int, chunk_customers: int | None = None, keep: tuple[str, ...] = ()
    ) -> pl.DataFrame:
        """Each customer's top k candidates (`models.ranker.rank_in_chunks`; `chunk_customers` scored at once,
        its default when None), each chunk's features from that chunk's inputs, predicted on the step's cores
        (`deploy.scoring_threads`)."""
        from hm_recs.models.ranker import SCORING_CHUNK_CUSTOMERS, rank_in_chunks

        return rank_in_chunks(
            self.ranker,
            candidates,
            lambda chunk: ranking_features(self.inputs(chunk["customer_id"]), chunk),
            k,
            chunk_customers or SCORING_CHUNK_CUSTOMERS,
            keep,
            num_threads=scoring_threads(),
        )
