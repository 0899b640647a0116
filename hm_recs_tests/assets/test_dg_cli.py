"""The `dg` command line on the project ([tool.dg] in pyproject.toml), as a Dagster user runs it from the
repository: `dg check defs` loads the code location, `dg list defs --json` lists what the UI shows."""

import json
import subprocess
import sys
from pathlib import Path

from hm_recs_tests.support import REPO

DG = str(Path(sys.executable).parent / "dg")


def dg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DG, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_dg_check_defs_loads_the_code_location():
    done = dg("check", "defs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout


def test_dg_list_defs_shows_the_graph_with_groups_owners_and_checks():
    done = dg("list", "defs", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    snapshot = json.loads((REPO / "hm_recs_tests" / "assets" / "asset_graph.json").read_text())
    assets = {a["asset_key"]: a for a in listed["assets"]}
    assert set(assets) == set(snapshot["assets"])
    for key, expected in snapshot["assets"].items():
        assert assets[key]["group_name"] == expected["group"], key
        assert assets[key]["owners"], f"{key} has no owner"
    assert {j["name"] for j in listed["jobs"]} >= {"weekly_job"}
    assert {s["name"] for s in listed["schedules"]} == {"weekly_schedule"}
    assert {c["key"] for c in listed["asset_checks"]} == set(snapshot["checks"])
