"""The model registry: where every learned model of a week, and every decision about it, is stored and read.

One resource (a folder or `s3://bucket/prefix`) holds, per model and week (layout in docs/models.md):
- the artefact, `models/<model>/week=W/model.pt` (torch, weights-only) or `model.json` (the LightGBM ranker),
  written only through `gate_then_store`: a model whose gate fails raises `dg.Failure` and is never stored, so
  the last good week's artefact stays the newest and nothing downstream is built on it;
- its version: a digest of its weights and configuration (`storage.encoding.state_version`), the same for two
  identical trainings; the artefact's own byte digest (`artefact_hash`) is what checks and the serving decision
  compare for integrity;
- the retrieval models' admission (whether their candidates join the week's union), each segment's decision
  (its own model or the global one), the ranker's serving decision and what the week actually published;
- the two-tower training data of the week, with its input windows and local retention.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import dagster as dg

from hm_recs.core.weeks import shift_weeks
from hm_recs.settings import DEFAULT_ARTEFACTS
from hm_recs.storage.encoding import from_bytes, json_bytes, state_version, to_bytes
from hm_recs.storage.location import Location, content_digest, is_missing, is_s3

JSON_MODELS = frozenset({"ranker"})
"""Models stored as JSON (the LightGBM ranker: its text model inside); the torch models as weights-only files."""

BUILT_BY = {"content": "article_content", "sequence": "sequence_model", "ranker": "ranker_model"}
"""The asset that stores each model (the others are stored by the asset of their own name)."""


@dataclass(frozen=True)
class StoredModel:
    """A model artefact as stored: where, its byte digest (integrity) and its version (weights + config)."""

    model: str
    week: dt.date
    uri: str
    artefact_hash: str
    version: str
    size_bytes: int

    def metadata(self) -> dict:
        return {"artefact": self.uri, "artefact_hash": self.artefact_hash, "version": self.version}


def _week(week: dt.date) -> str:
    return f"week={week.isoformat()}"


class ModelRegistry(dg.ConfigurableResource):
    """Models, their admissions and decisions, and the two-tower training data: a folder or `s3://bucket/prefix`."""

    uri: str = DEFAULT_ARTEFACTS
    endpoint_url: str | None = None

    def location(self) -> Location:
        return Location(self.uri, self.endpoint_url)

    # --- artefacts -------------------------------------------------------------------------------------------
    @staticmethod
    def artefact_key(model: str, week: dt.date) -> str:
        return f"models/{model}/{_week(week)}/model.{'json' if model in JSON_MODELS else 'pt'}"

    def gate_then_store(
        self, context, model: str, week: dt.date, state: dict, gate: dict[str, bool], figures: dict | None = None
    ) -> StoredModel:
        """Store `state` as week W's `model` only when every entry of its `gate` holds; otherwise raise
        `dg.Failure` naming the failed entries (no artefact written, nothing downstream runs on it)."""
        failed = sorted(name for name, passed in gate.items() if not passed)
        if failed:
            known = {k: v for k, v in (figures or {}).items() if isinstance(v, bool | int | float | str)}
            raise dg.Failure(
                f"{model} for week {week} failed its gate ({', '.join(failed)}); no artefact written, the last "
                "good week's stays the newest",
                metadata={**{f"gate/{k}": v for k, v in gate.items()}, **known},
            )
        data, digest = json_bytes(state) if model in JSON_MODELS else to_bytes(state)
        uri = self.location().write_bytes(self.artefact_key(model, week), data)
        stored = StoredModel(model, week, uri, digest, state_version(state), len(data))
        context.log.info(f"{model}: stored {uri} ({len(data) / 2**20:.1f} MiB, version {stored.version[:19]}...)")
        return stored

    def load(self, model: str, week: dt.date) -> tuple[dict, str]:
        """Week W's `model` state and its artefact hash; `dg.Failure` saying which asset to build when there is
        none. The version is not computed here (serving never needs it; `check` and `versions` do)."""
        key = self.artefact_key(model, week)
        try:
            data = self.location().read_bytes(key)
        except Exception as exc:  # missing (local or S3) or unreadable: the same answer for the operator
            raise dg.Failure(
                f"no {model} artefact for week {week} ({type(exc).__name__}: {exc}): `{BUILT_BY.get(model, model)}` "
                "was not built for this week or did not pass its gate"
            ) from exc
        return (json.loads(data) if model in JSON_MODELS else from_bytes(data)), content_digest(data)

    def check(self, stored: StoredModel, gate: dict[str, bool], check_name: str | None = None) -> dg.AssetCheckResult:
        """Re-verify what was stored: it loads (torch: weights_only=True), with the digest and version recorded at
        storing, and its gate held."""
        try:
            state, digest = self.load(stored.model, stored.week)
            version = state_version(state)
        except Exception as exc:  # a missing or unreadable artefact fails the check with its reason
            digest, version = f"unreadable: {exc}", ""
        return dg.AssetCheckResult(
            passed=bool(digest == stored.artefact_hash and version == stored.version and all(gate.values())),
            check_name=check_name,
            metadata={"artefact_hash": digest, "version": version, **{f"gate/{k}": v for k, v in gate.items()}},
        )

    def versions(self, week: dt.date) -> dict[str, str]:
        """The version of every model stored for week W (what produced the week's lists), by model name."""
        location = self.location()
        try:
            names = sorted(n for n in location.names() if n.startswith("models/") and f"/{_week(week)}/model." in n)
        except FileNotFoundError:
            return {}
        return {name.split("/")[1]: state_version(self.load(name.split("/")[1], week)[0]) for name in names}

    # --- decisions and records ---------------------------------------------------------------------------------
    def write_record(self, key: str, record: dict) -> str:
        return self.location().write_bytes(
            key, json.dumps(record, sort_keys=True, allow_nan=True, default=str).encode()
        )

    def read_record(self, key: str) -> dict | None:
        """The JSON record at `key`, or None when there is none (local or S3)."""
        try:
            return json.loads(self.location().read_bytes(key))
        except Exception as exc:
            if is_missing(exc):
                return None
            raise

    @staticmethod
    def admission_key(model: str, week: dt.date) -> str:
        return f"models/{model}/{_week(week)}/admission.json"

    def record_admission(self, context, model: str, week: dt.date, admission: dict, scores: dict) -> bool:
        """Store whether a retrieval model's candidates join this week's union (read by its candidates asset)."""
        admitted = bool(all(admission.values()))
        known = {k: v for k, v in scores.items() if v is not None}
        self.write_record(self.admission_key(model, week), {"admitted": admitted, **admission, **known})
        if not admitted:
            context.log.warning(
                f"{model} for week {week} does not beat popularity ({admission}; {scores}): stored, "
                "but its candidates sit this week out"
            )
        return admitted

    def admission(self, model: str, week: dt.date) -> tuple[bool, dict]:
        """Whether `model` was admitted for week W, and its admission record (`dg.Failure` when none)."""
        record = self.read_record(self.admission_key(model, week))
        if record is None:
            raise dg.Failure(f"no admission of {model} for week {week}: build `{BUILT_BY.get(model, model)}` first")
        return bool(record["admitted"]), record

    def admitted(self, model: str, week: dt.date) -> bool | None:
        """Whether `model` was admitted for week W; None when there is no record (the model was not built)."""
        record = self.read_record(self.admission_key(model, week))
        return None if record is None else bool(record["admitted"])

    @staticmethod
    def segment_decision_key(segment: str, week: dt.date) -> str:
        return f"models/two_tower_{segment}/{_week(week)}/decision.json"

    def record_segment_decision(self, segment: str, week: dt.date, decision: dict) -> None:
        self.write_record(self.segment_decision_key(segment, week), decision)

    def segment_decision(self, segment: str, week: dt.date) -> dict:
        """Which model serves `segment` in week W (`serves`: "segment" or "global") and why."""
        record = self.read_record(self.segment_decision_key(segment, week))
        if record is None:
            raise dg.Failure(f"no decision for segment {segment} in week {week}: build `two_tower_{segment}` first")
        return record

    @staticmethod
    def ranker_decision_key(week: dt.date) -> str:
        """Who serves week W+1 as the ranker's gate decided it (`core.serving.ServingDecision`), by `ranker_model`."""
        return f"models/ranker/{_week(week)}/decision.json"

    def record_ranker_decision(self, week: dt.date, decision: dict) -> None:
        self.write_record(self.ranker_decision_key(week), decision)

    def ranker_decision(self, week: dt.date) -> dict | None:
        return self.read_record(self.ranker_decision_key(week))

    @staticmethod
    def serving_key(week: dt.date) -> str:
        """What `recommendations` built at W actually published and why (read by the export's manifest)."""
        return f"serving/{_week(week)}/decision.json"

    def record_serving(self, week: dt.date, record: dict) -> None:
        self.write_record(self.serving_key(week), record)

    def serving(self, week: dt.date) -> dict | None:
        return self.read_record(self.serving_key(week))

    # --- the two-tower training data ---------------------------------------------------------------------------
    @staticmethod
    def training_data_key(week: dt.date) -> str:
        return f"training_data/two_tower/{_week(week)}/data.pt"

    def store_training_data(self, week: dt.date, windows: dict, state: dict) -> tuple[str, str, int]:
        """Week W's two-tower training data with the input windows it was built with: (uri, digest, bytes)."""
        data, digest = to_bytes({"windows": windows, "data": state})
        return self.location().write_bytes(self.training_data_key(week), data), digest, len(data)

    def training_data_digest(self, week: dt.date) -> str:
        return content_digest(self.location().read_bytes(self.training_data_key(week)))

    def training_data(self, week: dt.date, windows: dict) -> dict:
        """Week W's stored training data state; a clear failure when it is missing or was built with other windows
        than `windows` (the steps of one week must train and serve on the same data)."""
        try:
            state = from_bytes(self.location().read_bytes(self.training_data_key(week)))
        except Exception as exc:  # missing (local or S3, or expired) or unreadable: the same answer for the operator
            raise dg.Failure(
                f"no two-tower training data for week {week} ({type(exc).__name__}: {exc}): "
                "materialize `two_tower_data` for this week first"
            ) from exc
        if state["windows"] != windows:
            raise dg.Failure(
                f"week {week}'s two_tower_data was built with {state['windows']}, this step is configured with "
                f"{windows}: give `two_tower_data` the same ModelConfig windows and rebuild it"
            )
        return state["data"]

    def prune_training_data(self, week: dt.date, keep_weeks: int) -> list[str]:
        """Local folders: remove the two-tower training data of weeks more than `keep_weeks` before `week` (relative
        to the week built, so a backfill of older weeks never removes newer ones). On S3 the bucket's lifecycle
        rule expires `training_data/` (infra/terraform/s3.tf). Returns the week folders removed."""
        import shutil
        from pathlib import Path

        if is_s3(self.uri):
            return []
        root, oldest = Path(self.uri) / "training_data" / "two_tower", shift_weeks(week, -keep_weeks)
        removed = []
        for folder in sorted(root.glob("week=*")) if root.is_dir() else []:
            try:
                stale = dt.date.fromisoformat(folder.name.removeprefix("week=")) < oldest
            except ValueError:
                continue  # not ours
            if stale:
                shutil.rmtree(folder)
                removed.append(folder.name)
        return removed
