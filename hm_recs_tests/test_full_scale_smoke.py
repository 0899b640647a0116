"""The full-scale benchmark's own code path at test size (`benchmarks/full_scale.py`): the warm state (the weeks
before ingested), week W's refresh as one real `weekly_job` run, its score on the week after, the physical
references and ratios. Outputs are checked, not timings."""

import shutil

import polars as pl

from benchmarks import full_scale as F
from hm_recs_tests.conftest import WEEK


def test_full_scale_benchmark_smoke(small_source, small_data, history_template, tmp_path):
    warm = tmp_path / "warm"
    warm.mkdir()
    shutil.copy(history_template, warm / "warehouse.duckdb")
    lines: list[str] = []
    refresh = F.run_refresh(small_source, warm, WEEK, tmp_path / "work", executor="in_process", log=lines.append)
    assert refresh.success, refresh.failures
    # every step of the job reported its seconds; stages with rows report them; the tree's peak memory was sampled
    assert {"raw_transactions", "candidates", "ranker_model", "recommendations", "sequence_model"} <= set(refresh.steps)
    assert all(figures.get("seconds", 0) > 0 for figures in refresh.steps.values())
    customers = small_data.customers.height
    assert refresh.steps["recommendations"]["rows"] == {"recommendations": 12 * customers}
    assert refresh.steps["recommendations"]["peak_rss_mb"] > 0 and refresh.peak_tree_rss_mb > 100
    assert not refresh.failures
    # the warm state itself is untouched (the refresh works on a copy)
    assert (tmp_path / "work" / "warehouse.duckdb").stat().st_size > (warm / "warehouse.duckdb").stat().st_size

    scores = F.score_result(small_source, tmp_path / "work", WEEK, log=lines.append)
    assert {"model", "trending", "repurchase"} <= set(scores)
    assert 0 < scores["model"]["map_at_12"] <= 1

    references = F.references(small_source, tmp_path / "work", WEEK, refresh, log=lines.append)
    assert set(references) >= {
        "scan_week",
        "history_group_by",
        "epoch_sequence_model",
        "retrieval_top100",
        "candidate_sort_head",
        "lightgbm_train",
        "lightgbm_predict",
    }
    assert all(r["seconds"] > 0 for r in references.values())
    assert (
        references["lightgbm_predict"]["rows"]
        == refresh.steps["recommendations"]["metadata"]["recommendations.scored_rows"]
    )
    unreferenced = [s for s in refresh.steps if F.stage_reference(s) is None]
    assert len(unreferenced) <= len(refresh.steps) // 2, unreferenced  # most stages have a physical reference
    assert pl.Series(list(refresh.steps)).is_unique().all()
