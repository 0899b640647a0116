"""Torch threads per step (`deploy.torch_threads`): one per step process under the multiprocess executor, the
pod's CPU request on Kubernetes, every core for in-process runs; applied by the torch assets themselves."""

import os

import dagster as dg
import pytest
import torch

from hm_recs.definitions import all_assets
from hm_recs.deploy import SCORING_THREADS_ENV, TORCH_THREADS_ENV, scoring_threads, torch_threads
from hm_recs_tests.conftest import HISTORY_WEEKS, WEEKS


def test_threads_from_the_environment():
    assert torch_threads({}) == 1  # Dagster's multiprocess executor: as many steps at once as cores
    assert torch_threads({TORCH_THREADS_ENV: "2"}) == 2
    assert torch_threads({TORCH_THREADS_ENV: "0"}) == 1
    assert torch_threads({"HM_RECS_EXECUTOR": "k8s"}) == 4  # the training pods' default request
    assert torch_threads({"HM_RECS_EXECUTOR": "k8s", "HM_RECS_TRAINING_CPU": "1500m"}) == 1
    assert torch_threads({"HM_RECS_EXECUTOR": "k8s", "HM_RECS_TRAINING_CPU": "8", TORCH_THREADS_ENV: "3"}) == 3


def test_scoring_threads_from_the_environment():
    """The ranker's predict uses the step's cores: every core locally, the pod's request on Kubernetes."""
    assert scoring_threads(env={}) == len(os.sched_getaffinity(0))
    assert scoring_threads(env={SCORING_THREADS_ENV: "3"}) == 3
    assert scoring_threads(env={SCORING_THREADS_ENV: "0"}) == 1
    assert scoring_threads(env={"HM_RECS_EXECUTOR": "k8s"}) == 1  # the large step pods' default request
    assert scoring_threads(env={"HM_RECS_EXECUTOR": "k8s", "HM_RECS_LARGE_STEP_CPU": "2500m"}) == 2
    assert scoring_threads("training", env={"HM_RECS_EXECUTOR": "k8s"}) == 4


@pytest.mark.parametrize("configured, expected", [(None, 1), ("2", 2)])
def test_a_torch_step_sets_its_threads(configured, expected, small_source, with_history, tmp_path, monkeypatch):
    if configured is None:
        monkeypatch.delenv(TORCH_THREADS_ENV, raising=False)
    else:
        monkeypatch.setenv(TORCH_THREADS_ENV, configured)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        result = dg.materialize(
            all_assets,
            partition_key=WEEKS[HISTORY_WEEKS - 1].isoformat(),
            resources=with_history(small_source, tmp_path),
            selection=["article_content"],
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success
        assert torch.get_num_threads() == expected  # the in-process step set it
    finally:
        torch.set_num_threads(before)


def test_in_process_runs_use_every_core_and_leave_the_environment(monkeypatch):
    import os

    from hm_recs.runner import every_core_for_torch

    monkeypatch.delenv(TORCH_THREADS_ENV, raising=False)
    with every_core_for_torch():
        assert torch_threads() == (os.cpu_count() or 1)
    assert TORCH_THREADS_ENV not in os.environ  # a multiprocess run launched later keeps one thread per step
    monkeypatch.setenv(TORCH_THREADS_ENV, "1")
    with every_core_for_torch():
        assert torch_threads() == 1  # the user's setting wins
    assert os.environ[TORCH_THREADS_ENV] == "1"
