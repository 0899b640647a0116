"""Where the weekly job's steps run on Kubernetes: the executor switch and the `dagster-k8s/config` tags.

Plain configuration, no Dagster or dagster-k8s import at module level: the tags are JSON strings that Dagster
stores on each step, and dagster-k8s's k8s job executor reads them when it launches that step's pod. Locally
nothing here changes anything (the multiprocess executor ignores the tags). Every size is an environment
variable, so one image serves clusters of different shapes (docs/deploy.md lists them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from hm_recs.settings import (
    EXECUTOR_ENV,
    GPU_NODE_SELECTOR_ENV,
    LARGE_STEP_CPU_ENV,
    LARGE_STEP_MEMORY_ENV,
    MAX_STEP_PODS_ENV,
    SCORING_THREADS_ENV,
    STEP_CPU_ENV,
    STEP_MEMORY_ENV,
    TORCH_THREADS_ENV,
    TRAINING_CPU_ENV,
    TRAINING_GPUS_ENV,
    TRAINING_IMAGE_ENV,
    TRAINING_MEMORY_ENV,
    environment,
)

K8S_CONFIG_TAG = "dagster-k8s/config"
"""The op/job tag that dagster-k8s merges into the Kubernetes Job it creates for a step (or a run)."""


WAREHOUSE_RUN_TAG = {"hm-recs/warehouse": "duckdb"}
"""On every weekly run: the run queue admits one run with this tag at a time (infra/helm/values.yaml), because
the DuckDB warehouse takes one writer (docs/pipeline.md, "The DuckDB warehouse")."""

GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
"""The label NVIDIA's GPU feature discovery (GPU operator) puts on GPU nodes; override per cluster."""
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
"""GPU node groups (EKS, GKE, AKS) are tainted with this key so that only pods that ask for GPUs land there."""


@dataclass(frozen=True)
class PodSize:
    """Requests and limits of one container: CPU cores and memory as Kubernetes quantities, whole GPUs.

    Memory limit = request (a step is never killed for using what it asked for); no CPU limit (throttling a
    batch step only makes it slower)."""

    cpu: str
    memory: str
    gpus: int = 0

    def resources(self) -> dict:
        requests = {"cpu": self.cpu, "memory": self.memory}
        limits = {"memory": self.memory}
        if self.gpus:
            requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(self.gpus)
        return {"requests": requests, "limits": limits}


DEFAULT_STEP = PodSize(cpu="1", memory="8Gi")
"""Ingestion, validation, features, recommendations: polars on one week plus the history window."""
TRAINING_STEP = PodSize(cpu="4", memory="16Gi")
"""Model training (content encoder, global and per-segment two-tower): torch on the history window."""
LARGE_STEP = PodSize(cpu="1", memory="16Gi")
"""`ranking_inputs` (the week's ranking inputs for every customer, built once), `recommendations` and
`evaluation_report` (their readers, 5.5 and 12.1 GiB at H&M's size when each built its own inputs:
docs/benchmarks.md, third full-scale run), near or over the default step pod's 8 Gi; 16 Gi leaves the largest a
third of headroom, as the training pods have over the ranker's 11.6 GiB."""
RUN_WORKER_STEPS_IN_PODS = PodSize(cpu="500m", memory="1Gi")
"""The run's own pod when every step has a pod of its own: it only plans, launches and watches."""
RUN_WORKER_ALL_STEPS = PodSize(cpu="2", memory="24Gi")
"""The run's own pod when the steps run inside it: the single-machine budget (2 cores, 24 GiB: docs/deploy.md)."""
MAX_STEP_PODS = 8
"""Step pods at once per run (the six segment models train side by side)."""


@dataclass(frozen=True)
class Placement:
    """Sizes and GPU placement, from `HM_RECS_*` environment variables (defaults above)."""

    executor: str = "multiprocess"
    step: PodSize = DEFAULT_STEP
    training: PodSize = TRAINING_STEP
    large: PodSize = LARGE_STEP
    max_step_pods: int = MAX_STEP_PODS
    gpu_node_selector: Mapping[str, str] | None = None
    training_image: str | None = None
    """Image of the training steps only (the CUDA build of the same commit); None: the code location's image."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Placement:
        env = environment() if env is None else env
        executor = env.get(EXECUTOR_ENV, "multiprocess")
        if executor not in ("multiprocess", "k8s"):
            raise ValueError(f"{EXECUTOR_ENV}={executor!r}: expected 'multiprocess' or 'k8s'")
        selector = env.get(GPU_NODE_SELECTOR_ENV)
        return cls(
            executor=executor,
            step=PodSize(env.get(STEP_CPU_ENV, DEFAULT_STEP.cpu), env.get(STEP_MEMORY_ENV, DEFAULT_STEP.memory)),
            training=PodSize(
                env.get(TRAINING_CPU_ENV, TRAINING_STEP.cpu),
                env.get(TRAINING_MEMORY_ENV, TRAINING_STEP.memory),
                int(env.get(TRAINING_GPUS_ENV, TRAINING_STEP.gpus)),
            ),
            large=PodSize(
                env.get(LARGE_STEP_CPU_ENV, LARGE_STEP.cpu),
                env.get(LARGE_STEP_MEMORY_ENV, LARGE_STEP.memory),
            ),
            max_step_pods=int(env.get(MAX_STEP_PODS_ENV, MAX_STEP_PODS)),
            gpu_node_selector=json.loads(selector) if selector else DEFAULT_GPU_NODE_SELECTOR,
            training_image=env.get(TRAINING_IMAGE_ENV) or None,
        )

    def step_k8s_config(self, size: PodSize, kind: str, image: str | None = None) -> dict:
        """The `dagster-k8s/config` value of a step of this size; GPU steps go to tainted GPU nodes."""
        config: dict = {
            "container_config": {"resources": size.resources(), **({"image": image} if image else {})},
            "pod_template_spec_metadata": {"labels": {"hm-recs/step-kind": kind}},
        }
        if size.gpus:
            config["pod_spec_config"] = {
                "node_selector": dict(self.gpu_node_selector or DEFAULT_GPU_NODE_SELECTOR),
                "tolerations": GPU_TOLERATIONS,
            }
        return config

    def training_step_tags(self) -> dict[str, str]:
        config = self.step_k8s_config(self.training, "training", self.training_image)
        return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)}

    def large_step_tags(self) -> dict[str, str]:
        """Pod size of the step that builds the week's ranking inputs for every customer and of its readers
        (`LARGE_STEP`)."""
        return {K8S_CONFIG_TAG: json.dumps(self.step_k8s_config(self.large, "large"), sort_keys=True)}

    def run_tags(self) -> dict[str, str]:
        """Tags of every weekly run: the warehouse tag and the size of the run's own pod."""
        worker = RUN_WORKER_STEPS_IN_PODS if self.executor == "k8s" else RUN_WORKER_ALL_STEPS
        return {
            **WAREHOUSE_RUN_TAG,
            K8S_CONFIG_TAG: json.dumps({"container_config": {"resources": worker.resources()}}, sort_keys=True),
        }

    def executor_config(self) -> dict:
        """Config of dagster-k8s's `k8s_job_executor`: the default size of every step pod and how many at once."""
        return {"max_concurrent": self.max_step_pods, "step_k8s_config": self.step_k8s_config(self.step, "default")}

    def executor_def(self):
        """The weekly job's executor: None (Dagster's multiprocess default) unless `HM_RECS_EXECUTOR=k8s`.

        dagster-k8s is imported only then; the image installs it (`pip install .[k8s]`), local installs need not."""
        if self.executor != "k8s":
            return None
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(self.executor_config(), name="k8s_job_executor")


PLACEMENT = Placement.from_env()
TRAINING_STEP_TAGS = PLACEMENT.training_step_tags()
"""`op_tags=` of every model-training asset (article_content, two_tower_global, two_tower_<segment>)."""
LARGE_STEP_TAGS = PLACEMENT.large_step_tags()
"""`op_tags=` of recommendations and evaluation_report (their pod size; ranker_model has the training pod's)."""
RUN_TAGS = PLACEMENT.run_tags()
"""`tags=` of weekly_job."""


def step_priority(level: int) -> dict[str, str]:
    """`op_tags=` that order the ready steps when there are more of them than slots: Dagster's multiprocess
    executor (one slot per core) and dagster-k8s's `k8s_job_executor` (`max_concurrent`) both start the highest
    `dagster/priority` first; steps without the tag are 0."""
    return {"dagster/priority": str(level)}


# The week's critical path is the two-tower chain (data -> global model -> five segment fine-tunes -> retrieval)
# and what follows it (union -> ranker -> recommendations); the sequence chain is next. Left to the plan's
# order, the executor started sequence_model and the baselines first at full size, and the two-tower chain
# waited behind them. The content encoder feeds both chains; customer_segments feeds the segment models. The
# union, ranker and recommendations wait for both chains. The baselines (and the article features they read)
# are the champion that serves when the ranker cannot, so recommendations waits for them too: they rank with it.
# Tested: no step upstream of a prioritised one, ingestion and validation aside, has a lower priority.
CONTENT_PRIORITY = step_priority(30)
TWO_TOWER_PRIORITY = step_priority(20)
SEQUENCE_PRIORITY = step_priority(10)
RANKING_PRIORITY = step_priority(10)
CHAMPION_PRIORITY = RANKING_PRIORITY

LARGE_MEMORY_TAG = {"hm-recs/memory": "large"}
"""`op_tags=` of the step that builds the week's ranking inputs for every customer (ranking_inputs), of the
ranker's readers (ranker_model, recommendations, evaluation_report) and of recommendations_export: 5.5-12.1 GiB
each at H&M's size before the inputs were built once (docs/benchmarks.md). Under the
multiprocess executor at most one of them runs at a time (`local_execution_config`), so two never add up on
one machine: at full size evaluation_report (then 14.6 GiB) and recommendations_export (6 GiB) overlapped and
the run's processes peaked at 16.0 GiB; with the limit the tree peaks at the largest step plus 0.2 GiB
(docs/benchmarks.md). Kubernetes gives each step its own pod and memory, so no limit there."""


def local_execution_config() -> dict:
    """Default run config of `weekly_job`'s multiprocess executor (Dagster's local default, a selector that a
    run may switch to `in_process`): as many steps as cores, one `LARGE_MEMORY_TAG` step at a time."""
    key, value = next(iter(LARGE_MEMORY_TAG.items()))
    return {
        "execution": {
            "config": {"multiprocess": {"tag_concurrency_limits": [{"key": key, "value": value, "limit": 1}]}}
        }
    }


def torch_threads(env: Mapping[str, str] | None = None) -> int:
    """Intra-op threads for a step's torch work. `HM_RECS_TORCH_THREADS` when set (the CLI's in-process runs,
    one step at a time, set it to the machine's cores while they run: `runner.Pipeline.execute`). Otherwise: in a
    Kubernetes step pod (`HM_RECS_EXECUTOR=k8s`), the training pods' CPU request; else (Dagster's multiprocess
    executor runs as many steps at once as there are cores) one. Torch's default, every core in every step process,
    oversubscribes the machine when steps overlap, several times slower (docs/benchmarks.md, "Weekly refresh at a
    share of H&M's size")."""
    env = environment() if env is None else env
    if value := env.get(TORCH_THREADS_ENV):
        return max(1, int(value))
    if env.get(EXECUTOR_ENV) == "k8s":
        return _whole_cpus(Placement.from_env(env).training.cpu)
    return 1


def scoring_threads(pod: str = "large", env: Mapping[str, str] | None = None) -> int:
    """Threads of a step's LightGBM predict (the ranker's scoring in recommendations and evaluation_report,
    `ServingRanker.rank`). `HM_RECS_SCORING_THREADS` when set; in a Kubernetes step pod, the CPU request of the
    step's pod size (`pod`: "large", those steps' pods, or "training"); else every core this process may use.
    Unlike torch's, LightGBM's predict is one parallel region per `models.ranker.SCORE_CHUNK_ROWS` rows, each row
    scored alone: every thread count gives the same scores, and a core shared with another step costs that region
    a little, not several times.
    The steps that score run at the end of a week's graph (candidates -> ranker_model -> recommendations ->
    evaluation_report), one at a time: with one thread, one of the machine's two cores idled through 375 of
    recommendations' 630 s at H&M's size. Training keeps `RankerConfig.num_threads` (its histograms' sums follow
    the thread count)."""
    env = environment() if env is None else env
    if value := env.get(SCORING_THREADS_ENV):
        return max(1, int(value))
    if env.get(EXECUTOR_ENV) == "k8s":
        placement = Placement.from_env(env)
        return _whole_cpus({"large": placement.large, "training": placement.training}[pod].cpu)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _whole_cpus(cpu: str) -> int:
    """A Kubernetes CPU quantity ("4", "1500m") as whole cores, at least one."""
    return max(1, int(float(cpu[:-1]) / 1000) if cpu.endswith("m") else int(float(cpu)))


def use_step_threads() -> int:
    """Set torch's intra-op threads for this step (`torch_threads`) and return the number."""
    import torch

    threads = torch_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
