"""The full-scale benchmark's own code path at test size (`benchmarks/full_scale.py --smoke`, run as a command: no
test imports a benchmark): the warm state (the weeks before ingested), week W's refresh as one real `weekly_job`
run, its score on the week after, the physical references and ratios. Outputs are checked, not timings."""

import json
import pstats
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

from hm_recs_tests.conftest import WEEK
from hm_recs_tests.support import REPO


def test_full_scale_benchmark_smoke(small_source, small_data, history_template, tmp_path):
    warm = tmp_path / "warm"
    warm.mkdir()
    shutil.copy(history_template, warm / "warehouse.duckdb")
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/full_scale.py",
            "--smoke",
            str(small_source),
            str(warm),
            WEEK.isoformat(),
            str(tmp_path / "work"),
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    refresh = report["refresh"]
    assert refresh["success"], refresh["failures"]
    steps = refresh["steps"]
    # every step of the job reported its seconds; stages with rows report them; the tree's peak memory was sampled
    assert {"raw_transactions", "candidates", "ranker_model", "recommendations", "sequence_model"} <= set(steps)
    assert all(figures.get("seconds", 0) > 0 for figures in steps.values())
    customers = small_data.customers.height
    assert steps["recommendations"]["rows"] == {"recommendations": 12 * customers}
    assert steps["recommendations"]["peak_rss_mb"] > 0 and refresh["peak_tree_rss_mb"] > 100
    assert not refresh["failures"]
    # how each torch model trained, in its words: the warm state holds no model, so each trained from scratch
    assert steps["sequence_model"]["metadata"]["sequence_model.warm_started_from"] == "none (full retrain)"
    # the warm state itself is untouched (the refresh works on a copy)
    assert (tmp_path / "work" / "warehouse.duckdb").stat().st_size > (warm / "warehouse.duckdb").stat().st_size

    scores = report["scores"]
    assert {"model", "trending", "repurchase"} <= set(scores)
    assert 0 < scores["model"]["map_at_12"] <= 1
    # the refresh's own evaluation scores the week before's lists: the warm state published none, baselines only
    assert "model" not in report["previous_week_scores"]

    references = report["references"]
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
    assert references["lightgbm_predict"]["rows"] == steps["recommendations"]["metadata"]["recommendations.scored_rows"]
    unreferenced = report["unreferenced"]
    assert len(unreferenced) <= len(steps) // 2, unreferenced  # most stages have a physical reference
    assert pl.Series(list(steps)).is_unique().all()

    # where a step's seconds go: benchmarks/profile_step.py rebuilds one asset of the week on the refresh's work
    # folder in process, under cProfile
    profile = tmp_path / "baseline_recommendations.prof"
    profiled = subprocess.run(
        [
            sys.executable,
            "benchmarks/profile_step.py",
            str(tmp_path / "work"),
            "--source",
            str(small_source),
            "--week",
            WEEK.isoformat(),
            "--step",
            "baseline_recommendations",
            "--in-place",
            "--out",
            str(profile),
            "--top",
            "5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert profiled.returncode == 0, profiled.stderr[-3000:]
    assert f"baseline_recommendations of week {WEEK}" in profiled.stdout and "by cumulative" in profiled.stdout
    functions = {(Path(file).name, name) for file, _, name in pstats.Stats(str(profile)).stats}
    assert ("baselines.py", "baseline_recommendations") in functions  # the asset's own body ran under the profiler
