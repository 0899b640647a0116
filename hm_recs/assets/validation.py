"""Validation: typed `articles`, `customers`, `transactions` and their `quarantine_*` tables.

The gate runs before anything is stored (DESIGN.md section 7): rows breaking a rule go to quarantine
with the rule and their source file/row; if the quarantined share passes the bound the step fails after
storing the quarantine (so the operator sees why) and before storing the table. The blocking check then
re-verifies the stored partition with the Great Expectations suite and reports the suite's outcome on the
raw rows: which expectation failed, on how many rows, with examples.
"""


import dagster as dg
import polars as pl

from hm_recs.assets.common import PARTITIONED, measured, partition_rows, preview
from hm_recs.core.expectations import outcomes_markdown, run_suite
from hm_recs.core.schema import PROVENANCE_COLUMNS, TABLE_COLUMNS
from hm_recs.core.validation import RuleContext, ValidationLimits, quarantine_columns, split
from hm_recs.partitions import partition_week, weekly_partitions
from hm_recs.resources import Warehouse


class ValidationConfig(dg.Config):
    max_quarantine_share: float = ValidationLimits.max_quarantine_share
    max_price: float = ValidationLimits.max_price
    min_age: int = ValidationLimits.min_age
    max_age: int = ValidationLimits.max_age

    def limits(self) -> ValidationLimits:
        return ValidationLimits(self.max_price, self.min_age, self.max_age, self.max_quarantine_share)


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """A stored typed partition back in the raw text form the suite runs on."""
    return frame.select([pl.col(c).cast(pl.String) for c in frame.columns])


def validate_and_store(
    context: dg.AssetExecutionContext,
    table: str,
    raw_frame: pl.DataFrame,
    ctx: RuleContext,
    warehouse: Warehouse,
):
    """Split, store quarantine, gate, store the clean table, re-verify it (yields outputs and the check)."""
    week = partition_week(context)
    raw_rows = raw_frame.drop("week", *PROVENANCE_COLUMNS, strict=False)
    with measured(context, table) as figures:
        result = split(table, raw_rows, ctx)
        # With nothing quarantined the raw rows are the stored rows: the check's suite run covers both.
        raw_outcomes = run_suite(table, raw_rows, ctx) if result.quarantine.height else None
    share = result.quarantined_share
    examples = result.examples()
    counts = {f"quarantined/{rule}": n for rule, n in result.rule_counts.items()}
    yield dg.Output(
        result.quarantine.with_columns(pl.lit(week).alias("week")).select(quarantine_columns(table) + ["week"]),
        output_name=f"quarantine_{table}",
        metadata={"rows": result.quarantine.height, "share": round(share, 6), **counts,
                  "examples": dg.MetadataValue.json(examples),
                  "preview": preview(result.quarantine.select("source_file", "source_row", "rule", "reason"))},
    )
    for rule, lines in examples.items():
        context.log.warning(f"{table}: {result.rule_counts[rule]} row(s) quarantined by {rule}, e.g. {lines[0]}")
    limit = ctx.limits.max_quarantine_share
    if result.clean.height == 0 or share > limit:
        raise dg.Failure(
            description=(f"{table} week {week}: {result.quarantine.height} of {result.raw_rows} rows "
                         f"({share:.2%}) broke validation rules, over the bound of {limit:.2%}; nothing stored. "
                         f"Rules: {result.rule_counts}. See quarantine_{table}."),
            metadata={"rule_counts": dg.MetadataValue.json(result.rule_counts),
                      "examples": dg.MetadataValue.json(examples),
                      "expectations": dg.MetadataValue.md(outcomes_markdown(raw_outcomes or []))},
        )
    clean = result.clean.with_columns(pl.lit(week).alias("week"))
    yield dg.Output(clean, output_name=table,
                    metadata={"rows": clean.height, "quarantined_rows": result.quarantine.height,
                              "preview": preview(clean), **figures})

    stored = partition_rows(warehouse, table, week).drop("week")
    stored_quarantine = partition_rows(warehouse, f"quarantine_{table}", week, "count(*) as n")["n"][0]
    clean_outcomes = run_suite(table, _as_text(stored).with_columns(
        pl.lit(table).alias("source_file"), pl.lit(0, pl.Int64).alias("source_row")), ctx)
    failed_on_stored = [f"{o.rule}: {o.expectation}({o.column})" for o in clean_outcomes if not o.success]
    raw_outcomes = raw_outcomes if raw_outcomes is not None else clean_outcomes
    reconciled = stored.height + int(stored_quarantine) == result.raw_rows
    yield dg.AssetCheckResult(
        check_name=f"{table}_suite",
        asset_key=table,
        passed=bool(not failed_on_stored and reconciled and share <= limit),
        metadata={
            "raw_rows": result.raw_rows,
            "stored_rows": stored.height,
            "quarantined_rows": int(stored_quarantine),
            "quarantined_share": round(share, 6),
            "max_quarantine_share": limit,
            "nothing_lost": reconciled,
            "expectations_on_raw_rows": dg.MetadataValue.md(outcomes_markdown(raw_outcomes)),
            "failed_expectations_on_raw_rows": dg.MetadataValue.json(
                [o.as_dict() for o in raw_outcomes if not o.success]),
            "failed_expectations_on_stored_rows": dg.MetadataValue.json(failed_on_stored),
        },
    )


def _outs(table: str) -> dict[str, dg.AssetOut]:
    return {
        table: dg.AssetOut(metadata=PARTITIONED, kinds={"duckdb", "polars"},
                           description=f"Validated, typed {table} of week W ({', '.join(TABLE_COLUMNS[table][:3])}, ...)."),
        f"quarantine_{table}": dg.AssetOut(metadata=PARTITIONED, kinds={"duckdb"},
                                           description=f"Rows of raw_{table} that broke a rule, with rule, reason, file and row."),
    }


def _check(table: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(f"{table}_suite", asset=table, blocking=True,
                              description="Great Expectations suite passes on the stored partition; quarantined share "
                                          "under the bound; stored + quarantined rows = raw rows")]


@dg.multi_asset(outs=_outs("articles"), partitions_def=weekly_partitions, group_name="validation",
                check_specs=_check("articles"))
def validate_articles(context: dg.AssetExecutionContext, config: ValidationConfig, warehouse: Warehouse,
                      raw_articles: pl.DataFrame):
    yield from validate_and_store(context, "articles", raw_articles, RuleContext(limits=config.limits()), warehouse)


@dg.multi_asset(outs=_outs("customers"), partitions_def=weekly_partitions, group_name="validation",
                check_specs=_check("customers"))
def validate_customers(context: dg.AssetExecutionContext, config: ValidationConfig, warehouse: Warehouse,
                       raw_customers: pl.DataFrame):
    yield from validate_and_store(context, "customers", raw_customers, RuleContext(limits=config.limits()), warehouse)


@dg.multi_asset(outs=_outs("transactions"), partitions_def=weekly_partitions, group_name="validation",
                check_specs=_check("transactions"))
def validate_transactions(context: dg.AssetExecutionContext, config: ValidationConfig, warehouse: Warehouse,
                          raw_transactions: pl.DataFrame, articles: pl.DataFrame, customers: pl.DataFrame):
    ctx = RuleContext(limits=config.limits(), week=partition_week(context),
                      known_article_ids=articles["article_id"], known_customer_ids=customers["customer_id"])
    yield from validate_and_store(context, "transactions", raw_transactions, ctx, warehouse)
