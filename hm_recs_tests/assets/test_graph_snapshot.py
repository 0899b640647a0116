"""The code location's asset and check graph against its snapshot (`asset_graph.json`): keys, groups, dependencies,
the declared history lookbacks (and how many weeks before W they end, where not at W), partitioning, checks and
whether each blocks, jobs, schedules and sensors. A change to the graph shows up here as a reviewable diff;
regenerate on purpose with `HM_RECS_UPDATE_SNAPSHOT=1 pytest hm_recs_tests/assets/test_graph_snapshot.py`.
"""

import json
import os
from pathlib import Path

import dagster as dg

from hm_recs.definitions import defs

SNAPSHOT = Path(__file__).with_name("asset_graph.json")


def graph_snapshot() -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitioned": node.partitions_def is not None,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "lookback_weeks": {
                parent.to_user_string(): 1 - mapping.start_offset
                for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string())
                if isinstance(mapping := graph.get_partition_mapping(key, parent), dg.TimeWindowPartitionMapping)
                and mapping.start_offset != 0
            },
        }
        lagged = {  # dependencies on earlier weeks only (W-n..W-m), as the ranker's readers of ranking inputs
            parent.to_user_string(): -mapping.end_offset
            for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string())
            if isinstance(mapping := graph.get_partition_mapping(key, parent), dg.TimeWindowPartitionMapping)
            and mapping.end_offset != 0
        }
        if lagged:
            assets[key.to_user_string()]["weeks_before"] = lagged
    checks = {
        f"{k.asset_key.to_user_string()}:{k.name}": {"blocking": graph.get_check_spec(k).blocking}
        for k in graph.asset_check_keys
    }
    return {
        "assets": assets,
        "checks": dict(sorted(checks.items())),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_the_graph_matches_its_snapshot() -> None:
    current = graph_snapshot()
    if os.environ.get("HM_RECS_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1) + "\n")
    stored = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "checks"):
        changed = sorted(
            k for k in stored[part].keys() | current[part].keys() if stored[part].get(k) != current[part].get(k)
        )
        assert not changed, f"{part} changed (stored vs now): " + "; ".join(
            f"{k}: {stored[part].get(k)} -> {current[part].get(k)}" for k in changed
        )
    assert {k: current[k] for k in ("jobs", "schedules", "sensors")} == {
        k: stored[k] for k in ("jobs", "schedules", "sensors")
    }


def test_owners_and_the_published_table_s_freshness() -> None:
    """Every asset has an owner, and `recommendations` is late after Wednesday noon UTC (the UI's freshness)."""
    import dagster as dg

    graph = defs.resolve_asset_graph()
    assert all(graph.get(key).owners for key in graph.get_all_asset_keys())
    policy = graph.get(dg.AssetKey("recommendations")).freshness_policy
    assert policy.deadline_cron == "0 12 * * 3" and policy.timezone == "UTC"
