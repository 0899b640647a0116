"""Run configuration derived from the core's dataclasses: one declaration per setting, the launchpad's fields
and defaults follow it, and the stage builds the core dataclass back from what was configured."""

import dataclasses
from dataclasses import dataclass

import dagster as dg
import pytest

from hm_recs.assets.ranking import CandidatesConfig, RankerModelConfig
from hm_recs.assets.training import SegmentModelConfig, SequenceModelConfig
from hm_recs.configs import config_of, core_config
from hm_recs.core.candidates import CandidateConfig
from hm_recs.core.segments import SegmentConfig
from hm_recs.models.configs import RankerConfig, SequenceConfig, TwoTowerConfig
from hm_recs.models.ranker_data import TrainingWeeks


@dataclass(frozen=True)
class Example:
    size: int = 3
    share: float | None = 0.5
    order: tuple[str, ...] = ("a", "b")
    seed: int = 0


def test_fields_and_defaults_come_from_the_dataclass():
    Config = config_of(Example, exclude=("seed",), size=5)
    assert set(Config.model_fields) == {"size", "share", "order"}
    config = Config()
    assert (config.size, config.share, config.order) == (5, 0.5, ["a", "b"])
    built = core_config(Example, Config(order=["c"]), seed=9)
    assert built == Example(size=5, share=0.5, order=("c",), seed=9)  # the list back to a tuple
    with pytest.raises(TypeError, match="no configurable fields"):
        config_of(Example, no_such_field=1)


def test_stage_configs_carry_every_core_field_once():
    """No stage copies a core field by hand: each field of the core dataclasses is in its stage's config (the
    shared seed aside) with the core's default, and the stage's own settings come on top."""
    cases = [
        (RankerModelConfig, RankerConfig, {"seed"}),
        (RankerModelConfig, TrainingWeeks, set()),
        (CandidatesConfig, CandidateConfig, set()),
        (SequenceModelConfig, SequenceConfig, {"seed"}),
        (SegmentModelConfig, TwoTowerConfig, {"seed"}),
    ]
    for stage, core, shared in cases:
        names = {f.name for f in dataclasses.fields(core)} - shared
        assert names <= set(stage.model_fields), (stage, names - set(stage.model_fields))
    assert RankerModelConfig().objective == RankerConfig.objective
    assert SequenceModelConfig().batch_size == 128 and SequenceConfig.batch_size != 128  # the stage's override
    assert core_config(SegmentConfig, dg.Config()) == SegmentConfig()


def test_a_bad_value_is_refused_by_the_core_dataclass():
    with pytest.raises(ValueError, match="objective must be one of"):
        core_config(RankerConfig, RankerModelConfig(objective="no_such_objective"), seed=0)


def test_the_cli_history_weeks_reach_every_stage(tmp_path):
    """`--history-weeks` sets the shared `pipeline_settings` resource every stage reads, not only what is
    ingested."""
    import argparse

    from hm_recs.cli import _pipeline as pipeline_of

    args = argparse.Namespace(
        source=str(tmp_path),
        warehouse=str(tmp_path / "w.duckdb"),
        artefacts=str(tmp_path / "a"),
        exports=str(tmp_path / "e"),
        format=None,
        history_weeks=9,
    )
    pipeline = pipeline_of(args)
    assert pipeline.history_weeks == 9 and pipeline.resources["pipeline_settings"].history_weeks == 9
