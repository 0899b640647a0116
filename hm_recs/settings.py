"""Where the project's settings come from outside Dagster's run config: the `HM_RECS_*` environment variables,
named and read here and nowhere else (docs/architecture.md). Each default keeps `make demo` working with no
setup: everything under `.hm_recs/` in the working directory. Readers take an optional mapping in place of the
process environment, so tests and `infra/` can ask what a given environment means. Other tools' own variables
stay with the code that hands them on: `AWS_*` (boto3's, given to pyarrow's S3 client in `storage/location.py`)
and `DAGSTER_HOME` (Dagster's; `runner.instance` sets its default)."""

from __future__ import annotations

import os
from collections.abc import Mapping

# locations (resources.py): the Dagster config defaults of the resources
HOME = os.environ.get("HM_RECS_HOME", ".hm_recs")
DEFAULT_SOURCE = os.environ.get("HM_RECS_SOURCE", f"{HOME}/demo_data")
DEFAULT_WAREHOUSE = os.environ.get("HM_RECS_WAREHOUSE", f"{HOME}/warehouse.duckdb")
DEFAULT_ARTEFACTS = os.environ.get("HM_RECS_ARTEFACTS", f"{HOME}/artefacts")
DEFAULT_EXPORTS = os.environ.get("HM_RECS_EXPORTS", f"{HOME}/exports")

# placement (deploy.py)
EXECUTOR_ENV = "HM_RECS_EXECUTOR"
"""`multiprocess` (default: every step a process beside the run) or `k8s` (every step its own pod)."""
TORCH_THREADS_ENV = "HM_RECS_TORCH_THREADS"
SCORING_THREADS_ENV = "HM_RECS_SCORING_THREADS"
"""Threads of the ranker's LightGBM predict (`deploy.scoring_threads`; default: the step's cores)."""
STEP_CPU_ENV, STEP_MEMORY_ENV = "HM_RECS_STEP_CPU", "HM_RECS_STEP_MEMORY"
TRAINING_CPU_ENV, TRAINING_MEMORY_ENV, TRAINING_GPUS_ENV = (
    "HM_RECS_TRAINING_CPU",
    "HM_RECS_TRAINING_MEMORY",
    "HM_RECS_TRAINING_GPUS",
)
LARGE_STEP_CPU_ENV, LARGE_STEP_MEMORY_ENV = "HM_RECS_LARGE_STEP_CPU", "HM_RECS_LARGE_STEP_MEMORY"
MAX_STEP_PODS_ENV = "HM_RECS_MAX_STEP_PODS"
GPU_NODE_SELECTOR_ENV = "HM_RECS_GPU_NODE_SELECTOR"
TRAINING_IMAGE_ENV = "HM_RECS_TRAINING_IMAGE"

# operations: console log format (observability.py) and the failure report's webhook (sensors.py)
LOG_FORMAT_ENV = "HM_RECS_LOG_FORMAT"
ALERT_WEBHOOK_ENV = "HM_RECS_ALERT_WEBHOOK"


def environment() -> Mapping[str, str]:
    """The process environment, read when asked (a variable set after import counts)."""
    return os.environ


def setting(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The value of environment variable `name` in `env` (default: the process environment)."""
    return (environment() if env is None else env).get(name, default)
