"""Publishing a week's recommendation files so that readers only ever see complete weeks.

Layout under the exports location (a folder or an S3 prefix, `HM_RECS_EXPORTS`):

    week=2020-09-09/run=<run id>/recommendations.parquet   the contract table (README)
    week=2020-09-09/run=<run id>/recommendations.csv       Kaggle layout: customer_id,prediction
    week=2020-09-09/run=<run id>/manifest.json             week, rows, customers, files (bytes, sha256), models
    week=2020-09-09/run=<run id>/_SUCCESS                  written after everything above
    week=2020-09-09/CURRENT                                "run=<run id>": the week's published run
    week=2020-09-16/UNAVAILABLE.json                       a week that has no lists: why, and the failed run
    LATEST                                                 "week=2020-09-09/run=<run id>": newest complete week,
                                                           or "week=2020-09-16/UNAVAILABLE.json" when the newest
                                                           week has no lists

Every publication goes to a folder of its own, and becomes visible only through the pointers, which are
single small writes made after `_SUCCESS` (an atomic rename locally, one PUT on S3). So a reader that
follows `LATEST` (or a week's `CURRENT`) never sees a half-written week. A re-run of a week publishes a new
run folder and moves the pointers: the old files are never overwritten in place, and nothing needs deleting (the S3
role has no delete right). `LATEST` only moves forward: re-running an older week updates that week's `CURRENT`, not
`LATEST`. A week whose run could publish nothing (a failed data gate) gets `UNAVAILABLE.json` instead, and `LATEST`
points at that marker when the week is the newest: a reader following `LATEST` then learns that this week has no
lists rather than taking last week's for this week's (`read_published` refuses the marker with its reason). A week
that already has published lists keeps them. Local retention (`keep_weeks`) removes the oldest week folders and
superseded run folders; on S3, the bucket's lifecycle rule expires objects instead (infra/terraform).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path

from hm_recs.storage.location import Location, is_missing, is_s3

SUCCESS = "_SUCCESS"
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
LATEST = "LATEST"
UNAVAILABLE = "UNAVAILABLE.json"
_WEEK_FOLDER = re.compile(r"^week=(\d{4}-\d{2}-\d{2})$")


def week_folder(week: dt.date) -> str:
    return f"week={week.isoformat()}"


def _safe_run_id(run_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", run_id):
        raise ValueError(f"run id {run_id!r} is not a safe folder name")
    return run_id


def _pointer(location: Location, name: str) -> str | None:
    try:
        return location.read_bytes(name).decode().strip() or None
    except Exception as exc:  # a missing pointer (local or S3): nothing published there yet
        if is_missing(exc):
            return None
        raise


def latest_published(location: Location) -> tuple[dt.date, str] | None:
    """The newest complete week and its run folder (relative to the location), from `LATEST`."""
    pointer = _pointer(location, LATEST)
    if pointer is None:
        return None
    folder, _, _ = pointer.partition("/")
    match = _WEEK_FOLDER.match(folder)
    if not match:
        raise ValueError(f"{location.describe(LATEST)} holds {pointer!r}, not week=YYYY-MM-DD/run=...")
    return dt.date.fromisoformat(match.group(1)), pointer


def mark_unavailable(
    location: Location, week: dt.date, run_id: str, reason: str, now: dt.datetime | None = None
) -> str | None:
    """Mark week `week` as having no lists (why, which run) unless it already has a published run; `LATEST`
    moves to the marker when the week is at least the newest one. Returns the marker's name, or None."""
    if published_run(location, week):
        return None
    marker = f"{week_folder(week)}/{UNAVAILABLE}"
    location.write_bytes(
        marker,
        json.dumps(
            {
                "week": week.isoformat(),
                "run_id": run_id,
                "reason": reason,
                "marked_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
            },
            indent=2,
            sort_keys=True,
        ).encode(),
    )
    latest = latest_published(location)
    if latest is None or week >= latest[0]:
        location.write_bytes(LATEST, marker.encode())
    return marker


def published_run(location: Location, week: dt.date) -> str | None:
    """The run folder (relative to the location) that week `week`'s CURRENT points at, if any."""
    current = _pointer(location, f"{week_folder(week)}/{CURRENT}")
    return f"{week_folder(week)}/{current}" if current else None


def publish_week(
    location: Location,
    week: dt.date,
    run_id: str,
    files: dict[str, bytes],
    details: dict,
    keep_weeks: int | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Write `files` for week `week` into a run folder of their own, then the manifest, `_SUCCESS` and the
    pointers, in that order; return the manifest. `details` (rows, customers, model versions, ...) go into the
    manifest as they are. `keep_weeks`: on a local folder, keep only the newest that many week folders."""
    run_folder = f"{week_folder(week)}/run={_safe_run_id(run_id)}"
    entries = {}
    for name, data in files.items():
        location.write_bytes(f"{run_folder}/{name}", data)
        entries[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {
        "week": week.isoformat(),
        "run_id": run_id,
        "files": entries,
        **details,
        "published_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
    location.write_bytes(f"{run_folder}/{MANIFEST}", manifest_bytes)
    location.write_bytes(f"{run_folder}/{SUCCESS}", hashlib.sha256(manifest_bytes).hexdigest().encode())
    location.write_bytes(f"{week_folder(week)}/{CURRENT}", f"run={run_id}".encode())
    latest = latest_published(location)
    if latest is None or week >= latest[0]:
        location.write_bytes(LATEST, run_folder.encode())
    if keep_weeks is not None and not is_s3(location.uri):
        apply_retention(Path(location.uri), keep_weeks)
    return manifest


def apply_retention(root: Path, keep_weeks: int) -> list[str]:
    """Local folders only: remove the week folders older than the newest `keep_weeks`, and in the weeks kept,
    the run folders their CURRENT no longer points at. Returns what was removed (relative names)."""
    weeks = sorted((p for p in root.iterdir() if p.is_dir() and _WEEK_FOLDER.match(p.name)), reverse=True)
    removed = []
    for old in weeks[max(keep_weeks, 1) :]:
        shutil.rmtree(old)
        removed.append(old.name)
    for folder in weeks[: max(keep_weeks, 1)]:
        current = (folder / CURRENT).read_text().strip() if (folder / CURRENT).exists() else None
        for run in folder.glob("run=*"):
            if current and run.name != current and run.is_dir():
                shutil.rmtree(run)
                removed.append(f"{folder.name}/{run.name}")
    return removed


def read_published(location: Location, pointer: str) -> tuple[dict, dict[str, bytes]]:
    """The manifest and files of a published run folder, each file checked against the manifest's sha256
    (what a careful reader does; `_SUCCESS` must be there). A week marked unavailable is refused with its reason."""
    if pointer.endswith(f"/{UNAVAILABLE}"):
        marker = json.loads(location.read_bytes(pointer))
        raise ValueError(
            f"week {marker['week']} has no recommendations ({location.describe(pointer)}): {marker['reason']}"
        )
    location.read_bytes(f"{pointer}/{SUCCESS}")
    manifest = json.loads(location.read_bytes(f"{pointer}/{MANIFEST}"))
    files = {}
    for name, entry in manifest["files"].items():
        data = location.read_bytes(f"{pointer}/{name}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"{location.describe(pointer)}/{name}: checksum differs from the manifest")
        files[name] = data
    return manifest, files
