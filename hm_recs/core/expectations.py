"""Runs a table's Great Expectations suite (derived from `validation` rules) on a polars frame.

GX 1.x has no polars datasource, so the frame goes through pandas in an ephemeral context. GX is imported
inside the function: every Dagster step re-imports the code location and GX takes seconds to import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from hm_recs.core.validation import Expectation, RuleContext, derived_columns, expectations_for, prepare


@dataclass(frozen=True)
class ExpectationOutcome:
    rule: str
    expectation: str
    column: str | None
    success: bool
    element_count: int | None
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _gx_expectation(gx, spec: Expectation):
    return getattr(gx.expectations, spec.type)(**spec.kwargs)


def run_suite(table: str, frame: pl.DataFrame, ctx: RuleContext, *, examples: int = 5) -> list[ExpectationOutcome]:
    """Validate `frame` (raw text rows with source lineage, as stored) against the table's suite."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    prepared = prepare(table, frame).drop("source_file", "source_row")
    prepared = prepared.with_columns(**derived_columns(table, ctx))
    # list columns (image vectors) are checked through their derived length/finite columns, not handed to pandas
    prepared = prepared.drop([c for c, t in prepared.schema.items() if isinstance(t, pl.List)])
    pairs = expectations_for(table, ctx)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas(f"{table}_source")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("partition")
    )
    suite = gx.ExpectationSuite(name=f"{table}_suite")
    for _, spec in pairs:
        suite.add_expectation(_gx_expectation(gx, spec))
    # GX compares dates as datetimes; pandas needs datetime64 rather than python dates.
    pandas_frame = prepared.with_columns(
        [pl.col(c).cast(pl.Datetime("us")) for c, t in prepared.schema.items() if t == pl.Date()]
    ).to_pandas()
    batch = batch_definition.get_batch(batch_parameters={"dataframe": pandas_frame})
    result = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": examples})
    outcomes = []
    # GX returns results in suite order; pair them back to their rules by expectation config.
    by_config = {(spec.type, spec.kwargs.get("column")): rule for rule, spec in pairs}
    for r in result.results:
        config = r.expectation_config
        column = config.kwargs.get("column")
        type_name = "".join(part.capitalize() for part in config.type.split("_"))
        res = r.result or {}
        outcomes.append(
            ExpectationOutcome(
                rule=by_config.get((type_name, column), "?"),
                expectation=config.type,
                column=column,
                success=bool(r.success),
                element_count=res.get("element_count"),
                unexpected_count=res.get("unexpected_count"),
                unexpected_percent=None
                if res.get("unexpected_percent") is None
                else round(float(res["unexpected_percent"]), 4),
                examples=[str(x)[:80] for x in (res.get("partial_unexpected_list") or [])][:examples],
            )
        )
    return outcomes


def outcomes_markdown(outcomes: list[ExpectationOutcome]) -> str:
    lines = ["| rule | expectation | column | ok | unexpected | % | examples |", "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        lines.append(
            f"| {o.rule} | {o.expectation} | {o.column or ''} | {'✅' if o.success else '❌'} | "
            f"{o.unexpected_count if o.unexpected_count is not None else ''} | "
            f"{'' if o.unexpected_percent is None else f'{o.unexpected_percent:.2f}'} | "
            f"{', '.join(o.examples[:3]).replace('|', '/')} |"
        )
    return "\n".join(lines)
