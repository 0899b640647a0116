"""The model registry on a local folder: one gate-then-store path, versions of weights and configuration,
integrity checks and the decision records."""

import datetime as dt

import dagster as dg
import pytest
import torch

from hm_recs.registry import ModelRegistry
from hm_recs.storage.encoding import state_version

WEEK = dt.date(2020, 9, 9)


def a_state(weight: float = 1.0, seconds: float = 0.5) -> dict:
    return {
        "config": {"dim": 2, "epochs": 1},
        "weights": {"layer.weight": torch.full((2, 2), weight)},
        "history": [{"epoch": 1, "loss": 0.3, "seconds": seconds}],
    }


def test_a_model_failing_its_gate_is_never_stored(tmp_path):
    registry = ModelRegistry(uri=str(tmp_path))
    with pytest.raises(dg.Failure, match=r"sequence for week 2020-09-09 failed its gate \(loss_fell\)"):
        registry.gate_then_store(
            dg.build_op_context(), "sequence", WEEK, a_state(), {"loss_fell": False, "finite": True}
        )
    assert not list(tmp_path.rglob("model.pt"))
    with pytest.raises(dg.Failure, match="`sequence_model` was not built for this week or did not pass its gate"):
        registry.load("sequence", WEEK)


def test_the_version_names_weights_and_configuration_not_the_training_log():
    assert state_version(a_state(seconds=0.5)) == state_version(a_state(seconds=9.0))
    assert state_version(a_state(weight=1.0)) != state_version(a_state(weight=1.0 + 1e-6))
    changed = a_state()
    changed["config"]["epochs"] = 2
    assert state_version(changed) != state_version(a_state())


def test_stored_models_reload_with_their_hash_and_version_and_a_tampered_one_fails_its_check(tmp_path):
    registry = ModelRegistry(uri=str(tmp_path))
    context = dg.build_op_context()
    stored = registry.gate_then_store(context, "two_tower_global", WEEK, a_state(), {"finite": True})
    ranker = registry.gate_then_store(context, "ranker", WEEK, {"model": "tree", "validation": {"seconds": 1}}, {})
    assert registry.check(stored, {"finite": True}).passed
    assert registry.versions(WEEK) == {"ranker": ranker.version, "two_tower_global": stored.version}
    state, artefact_hash = registry.load("two_tower_global", WEEK)
    assert (
        artefact_hash == stored.artefact_hash
        and state_version(state) == stored.version
        and torch.equal(state["weights"]["layer.weight"], torch.ones(2, 2))
    )
    (tmp_path / "models" / "two_tower_global" / f"week={WEEK}" / "model.pt").write_bytes(b"not a model")
    check = registry.check(stored, {"finite": True})
    assert not check.passed and check.metadata["artefact_hash"].value.startswith("unreadable")


def test_decision_records_round_trip_and_missing_ones_say_what_to_build(tmp_path):
    registry = ModelRegistry(uri=str(tmp_path))
    context = dg.build_op_context()
    assert registry.record_admission(context, "sequence", WEEK, {"auc_beats_popularity": True}, {"auc": 0.9})
    assert not registry.record_admission(context, "two_tower_global", WEEK, {"auc_beats_popularity": False}, {})
    assert registry.admission("sequence", WEEK) == (True, {"admitted": True, "auc_beats_popularity": True, "auc": 0.9})
    assert registry.admission("two_tower_global", WEEK)[0] is False
    registry.record_segment_decision("seasonal", WEEK, {"serves": "segment"})
    assert registry.segment_decision("seasonal", WEEK)["serves"] == "segment"
    with pytest.raises(dg.Failure, match="build `two_tower_default` first"):
        registry.segment_decision("default", WEEK)
    assert registry.ranker_decision(WEEK) is None and registry.serving(WEEK) is None
    registry.record_serving(WEEK, {"served_by": "ranker"})
    assert registry.serving(WEEK) == {"served_by": "ranker"}
