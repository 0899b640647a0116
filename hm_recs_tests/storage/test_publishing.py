"""Publishing CRM files: whole weeks only, re-runs replace through pointers, LATEST only moves forward."""

import datetime as dt

import pytest

from hm_recs.core import publishing as P
from hm_recs.storage.location import Location

W1, W2, W3 = dt.date(2020, 9, 2), dt.date(2020, 9, 9), dt.date(2020, 9, 16)


def publish(location: Location, week: dt.date, run: str, body: bytes = b"a,b\n", keep: int | None = None) -> dict:
    return P.publish_week(location, week, run, {"recommendations.csv": body}, {"rows": 1}, keep_weeks=keep)


def test_pointers_name_complete_weeks_and_latest_only_moves_forward(tmp_path):
    location = Location(str(tmp_path))
    assert P.latest_published(location) is None
    publish(location, W2, "run-a")
    assert P.latest_published(location) == (W2, "week=2020-09-09/run=run-a")
    publish(location, W1, "run-b")  # a backfill of an older week does not move LATEST back
    assert P.latest_published(location) == (W2, "week=2020-09-09/run=run-a")
    assert P.published_run(location, W1) == "week=2020-09-02/run=run-b"
    manifest = publish(location, W2, "run-c", b"a,b\nc,d\n")  # the re-run of W2 takes over
    assert P.latest_published(location)[1] == "week=2020-09-09/run=run-c"
    read, files = P.read_published(location, "week=2020-09-09/run=run-c")
    assert read == manifest and files["recommendations.csv"] == b"a,b\nc,d\n"
    assert manifest["files"]["recommendations.csv"]["bytes"] == 8
    assert (tmp_path / "week=2020-09-09" / "run=run-a" / "_SUCCESS").exists()  # untouched, not overwritten


def test_a_run_folder_without_success_or_with_a_changed_file_is_refused(tmp_path):
    location = Location(str(tmp_path))
    publish(location, W1, "run-a")
    (tmp_path / "week=2020-09-02" / "run=run-a" / "recommendations.csv").write_bytes(b"tampered\n")
    with pytest.raises(ValueError, match="checksum differs"):
        P.read_published(location, "week=2020-09-02/run=run-a")
    (tmp_path / "week=2020-09-02" / "run=run-a" / "_SUCCESS").unlink()
    with pytest.raises(FileNotFoundError):
        P.read_published(location, "week=2020-09-02/run=run-a")


def test_local_retention_keeps_the_newest_weeks_and_current_runs(tmp_path):
    location = Location(str(tmp_path))
    for week, run in ((W1, "a"), (W2, "b"), (W2, "c"), (W3, "d")):
        publish(location, week, run, keep=2)
    weeks = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert weeks == ["week=2020-09-09", "week=2020-09-16"]
    assert [p.name for p in (tmp_path / "week=2020-09-09").glob("run=*")] == ["run=c"]
    assert P.latest_published(location)[0] == W3


def test_unsafe_run_ids_and_paths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a safe folder name"):
        publish(Location(str(tmp_path)), W1, "../escape")


@pytest.mark.parametrize("name", ["../outside.csv", "a/../../outside.csv", "/etc/passwd", ""])
def test_names_cannot_escape_the_configured_root(tmp_path, name):
    for location in (Location(str(tmp_path / "root")), Location("s3://bucket/prefix")):
        with pytest.raises(ValueError, match="outside"):
            location.read_bytes(name)
    with pytest.raises(ValueError, match="outside"):
        Location(str(tmp_path / "root")).write_bytes(name, b"x")
