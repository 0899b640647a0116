"""What infra/helm/values.yaml implies, as Kubernetes objects and a Dagster instance file: our rendering, not helm's.

helm cannot be installed where CI runs, so this module renders from the values the objects that matter to
hm_recs the way the `dagster/dagster` chart's templates (1.13) do: the code server's Deployment and Service,
the service account, the instance's `dagster.yaml`. The Jobs of a run pod and of each step pod are built by
dagster-k8s's own code (the container-context merge and `construct_dagster_k8s_job` that its run launcher and
k8s job executor call), from the rendered instance, the code server's container context, the run's tags and
each step's `dagster-k8s/config` tag. hm_recs_tests/assets/test_infra.py validates all of it.

    python infra/render.py            # every object as YAML, e.g. for `kubectl apply --dry-run=server -f -`
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

INFRA = Path(__file__).resolve().parent
REPO = INFRA.parent
VALUES = INFRA / "helm" / "values.yaml"

RELEASE = "dagster"
NAMESPACE = "hm-recs"
CHART_VERSION = "1.13.27"
DAGSTER_HOME = "/opt/dagster/dagster_home"
CHART = "dagster"
USER_CHART = "dagster-user-deployments"


def load_values(path: Path = VALUES) -> dict:
    return yaml.safe_load(path.read_text())


def fullname(chart: str, release: str = RELEASE) -> str:
    """The chart's `dagster.fullname`: the release name if it contains the chart's name, else release-chart."""
    return release if chart in release else f"{release}-{chart}"[:63].rstrip("-")


def labels(chart: str) -> dict:
    return {"helm.sh/chart": f"{chart}-{CHART_VERSION}", **selector_labels(chart),
            "app.kubernetes.io/version": CHART_VERSION, "app.kubernetes.io/managed-by": "Helm"}


def selector_labels(chart: str) -> dict:
    return {"app.kubernetes.io/name": chart, "app.kubernetes.io/instance": RELEASE}


def service_account_name(values: Mapping) -> str:
    return (values.get("global", {}).get("serviceAccountName") or values.get("serviceAccount", {}).get("name")
            or fullname(CHART))


def image_name(image: Mapping) -> str:
    return f"{image['repository']}:{image.get('tag') or CHART_VERSION}"


def user_deployments(values: Mapping) -> list[dict]:
    return values["dagster-user-deployments"]["deployments"]


# ---------------------------------------------------------------------------------------------- chart objects
def service_account(values: Mapping) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": service_account_name(values), "namespace": NAMESPACE, "labels": labels(CHART),
                         "annotations": dict(values["serviceAccount"].get("annotations") or {})}}


def code_server_container_context(values: Mapping, deployment: Mapping) -> dict:
    """The chart's `dagsterUserDeployments.k8sContainerContext`: what the code server hands to its runs."""
    k8s: dict = {"image_pull_policy": deployment["image"]["pullPolicy"],
                 "env_config_maps": [f"{fullname(USER_CHART)}-{deployment['name']}-user-env",
                                     *[m["name"] for m in deployment.get("envConfigMaps") or [] if "name" in m]]}
    if values.get("imagePullSecrets"):
        k8s["image_pull_secrets"] = values["imagePullSecrets"]
    if deployment.get("envSecrets"):
        k8s["env_secrets"] = [s["name"] for s in deployment["envSecrets"] if "name" in s]
    for key, name in (("volumeMounts", "volume_mounts"), ("volumes", "volumes"), ("labels", "labels"),
                      ("resources", "resources"), ("schedulerName", "scheduler_name")):
        if deployment.get(key):
            k8s[name] = copy.deepcopy(deployment[key])
    k8s["namespace"] = NAMESPACE
    k8s["service_account_name"] = service_account_name(values)
    if isinstance(deployment.get("env"), list) and deployment["env"]:
        k8s["env"] = copy.deepcopy(deployment["env"])
    return {"k8s": k8s}


def code_server_deployment(values: Mapping, deployment: Mapping) -> dict:
    """The chart's `deployment-user.yaml` for one entry of dagster-user-deployments.deployments."""
    name, port = deployment["name"], deployment["port"]
    image = image_name(deployment["image"])
    health = {"exec": {"command": ["dagster", "api", "grpc-health-check", "-p", str(port)]}}
    if deployment.get("dagsterApiGrpcArgs"):
        args = ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(port), *deployment["dagsterApiGrpcArgs"]]
        context_env = "DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT"
    else:
        args = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(port), *deployment["codeServerArgs"]]
        context_env = "DAGSTER_CONTAINER_CONTEXT"
    env = [{"name": "DAGSTER_CURRENT_IMAGE", "value": image},
           {"name": "DAGSTER_PG_PASSWORD", "valueFrom": {"secretKeyRef": {
               "name": values["global"]["postgresqlSecretName"], "key": "postgresql-password"}}}]
    if (deployment.get("includeConfigInLaunchedRuns") or {"enabled": True})["enabled"]:
        env.append({"name": context_env, "value": json.dumps(code_server_container_context(values, deployment))})
    env += copy.deepcopy(deployment.get("env") or [])
    env_from = [{"configMapRef": {"name": f"{fullname(USER_CHART)}-user-deployments-shared-env"}},
                {"configMapRef": {"name": f"{fullname(USER_CHART)}-{name}-user-env"}},
                *[{"configMapRef": m} for m in deployment.get("envConfigMaps") or []],
                *[{"secretRef": s} for s in deployment.get("envSecrets") or []]]
    container = {"name": USER_CHART, "securityContext": deployment.get("securityContext") or {},
                 "imagePullPolicy": deployment["image"]["pullPolicy"], "image": image, "args": args,
                 "env": env, "envFrom": env_from, "resources": deployment.get("resources") or {},
                 "readinessProbe": {**health, "periodSeconds": 20, "timeoutSeconds": 10, "successThreshold": 1,
                                    "failureThreshold": 15}}
    if deployment.get("volumeMounts"):
        container["volumeMounts"] = deployment["volumeMounts"]
    match = {**selector_labels(USER_CHART), "component": "user-deployments", "deployment": name}
    spec = {"imagePullSecrets": values.get("imagePullSecrets") or [],
            "serviceAccountName": service_account_name(values), "automountServiceAccountToken": True,
            "securityContext": deployment.get("podSecurityContext") or {}, "containers": [container],
            "nodeSelector": deployment.get("nodeSelector") or {}, "affinity": deployment.get("affinity") or {},
            "tolerations": deployment.get("tolerations") or []}
    if deployment.get("volumes"):
        spec["volumes"] = deployment["volumes"]
    checksum = hashlib.sha256(json.dumps(deployment, sort_keys=True).encode()).hexdigest()
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"{fullname(USER_CHART)}-{name}", "namespace": NAMESPACE,
                         "labels": {**labels(USER_CHART), "component": "user-deployments", "deployment": name,
                                    **(deployment.get("labels") or {})},
                         "annotations": deployment.get("annotations") or {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": match},
                     "template": {"metadata": {"labels": {**match, **(deployment.get("labels") or {})},
                                               "annotations": {"checksum/dagster-user-deployment": checksum}},
                                  "spec": spec}}}


def code_server_service(deployment: Mapping) -> dict:
    name = deployment["name"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {**labels(USER_CHART), "component": "user-deployments", "deployment": name}},
            "spec": {"type": "ClusterIP", "ports": [{"port": deployment["port"], "protocol": "TCP", "name": "grpc"}],
                     "selector": {**selector_labels(USER_CHART), "component": "user-deployments", "deployment": name}}}


# ------------------------------------------------------------------------------------------- instance file
CHART_POD_ENV = {
    "DAGSTER_HOME": DAGSTER_HOME,
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": f"{fullname(CHART)}-instance",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": f"{fullname(CHART)}-pipeline-env",
}
"""What the chart sets on the daemon and webserver pods, which the instance file reads with `env:`."""


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def _run_launcher(values: Mapping) -> dict:
    assert values["runLauncher"]["type"] == "K8sRunLauncher", "hm_recs runs on the K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict = {"load_incluster_config": k8s["loadInclusterConfig"], "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
                    "image_pull_policy": k8s["imagePullPolicy"], "service_account_name": service_account_name(values),
                    "dagster_home": {"env": "DAGSTER_HOME"}, "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
                    "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
                    "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"},
                                        *[m["name"] for m in k8s.get("envConfigMaps") or [] if "name" in m]]}
    if values.get("imagePullSecrets"):
        config["image_pull_secrets"] = values["imagePullSecrets"]
    if k8s.get("kubeconfigFile"):
        config["kubeconfig_file"] = k8s["kubeconfigFile"]
    if k8s.get("image"):
        config["job_image"] = image_name(k8s["image"])
    if k8s.get("envSecrets"):
        config["env_secrets"] = [s["name"] for s in k8s["envSecrets"] if "name" in s]
    for key in ("envVars", "volumeMounts", "volumes", "labels", "resources", "schedulerName", "securityContext"):
        if k8s.get(key):
            config[_snake(key)] = copy.deepcopy(k8s[key])
    if k8s.get("failPodOnRunFailure") is not None:
        config["fail_pod_on_run_failure"] = k8s["failPodOnRunFailure"]
    if k8s.get("runK8sConfig"):
        config["run_k8s_config"] = {_snake(k): copy.deepcopy(v) for k, v in k8s["runK8sConfig"].items() if v}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def _postgres(values: Mapping) -> dict:
    pg = values["postgresql"]
    db = {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
          "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"]}
    if pg.get("postgresqlParams"):
        db["params"] = pg["postgresqlParams"]
    if pg.get("postgresqlScheme"):
        db["scheme"] = pg["postgresqlScheme"]
    return {"postgres_db": db}


def _run_coordinator(values: Mapping) -> dict:
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    config: dict = {}
    for key in ("maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueUseThreads",
                "dequeueNumWorkers"):
        if queued.get(key) is not None and queued.get(key) != []:
            config[_snake(key)] = queued[key]
    return {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator", "config": config}


def _compute_logs(values: Mapping) -> dict:
    manager = values["computeLogManager"]
    assert manager["type"] == "S3ComputeLogManager"
    return {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager",
            "config": {_snake(k): v for k, v in manager["config"]["s3ComputeLogManager"].items()}}


def instance_yaml(values: Mapping) -> dict:
    """The chart's `configmap-instance.yaml` (`dagster.yaml` of every Dagster pod) for these values."""
    daemon = values["dagsterDaemon"]
    postgres = _postgres(values)
    instance = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": postgres},
        "run_launcher": _run_launcher(values),
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": postgres},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": postgres},
        "compute_logs": _compute_logs(values),
        "telemetry": {"enabled": bool(values.get("telemetry", {}).get("enabled", True))},
    }
    if daemon["enabled"] and daemon["runCoordinator"]["enabled"]:
        instance["run_coordinator"] = _run_coordinator(values)
    monitoring = daemon.get("runMonitoring") or {}
    if daemon["enabled"] and monitoring.get("enabled"):
        instance["run_monitoring"] = {"enabled": True, "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                                      "poll_interval_seconds": monitoring["pollIntervalSeconds"]}
    retries = daemon.get("runRetries") or {}
    if daemon["enabled"] and retries.get("enabled"):
        instance["run_retries"] = {"enabled": True, **({"max_retries": retries["maxRetries"]} if retries.get("maxRetries") else {})}
    instance.update(copy.deepcopy(values.get("additionalInstanceConfig") or {}))
    return instance


# ------------------------------------------------------------------------------ run and step pods (dagster-k8s)
OFFLINE_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "offline",
    "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "offline", "user": {"token": "offline"}}],
    "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
}
"""The run launcher insists on loading a kube config; nothing is ever sent to this address."""


@contextlib.contextmanager
def _environment(extra: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_launcher(values: Mapping):
    """dagster-k8s's K8sRunLauncher built from the rendered instance file, as the daemon would build it
    (except that it reads an offline kube config instead of the in-cluster one)."""
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    config = instance_yaml(values)["run_launcher"]["config"]
    with _environment({**CHART_POD_ENV, "DAGSTER_K8S_PG_PASSWORD_SECRET": values["global"]["postgresqlSecretName"]}):
        processed = process_config(K8sRunLauncher.config_type(), config)
    if not processed.success:
        raise ValueError(f"run launcher config: {[e.message for e in processed.errors]}")
    kubeconfig = Path(tempfile.mkdtemp(prefix="hm_recs_kube_")) / "config"
    kubeconfig.write_text(yaml.safe_dump(OFFLINE_KUBECONFIG))
    return K8sRunLauncher(**{**processed.value, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)})


def weekly_run(values: Mapping, run_tags: Mapping[str, str]):
    """A weekly_job run as the code server would submit it: its origin carries the container context."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.storage.dagster_run import DagsterRun

    deployment = user_deployments(values)[0]
    origin = RepositoryPythonOrigin(
        executable_path="/usr/local/bin/python", code_pointer=ModuleCodePointer("hm_recs.definitions", "defs", None),
        container_image=image_name(deployment["image"]),
        container_context=code_server_container_context(values, deployment))
    return DagsterRun(job_name="weekly_job", run_id="0a1b2c3d-0000-4000-8000-00000000cafe", tags=dict(run_tags),
                      job_code_origin=JobPythonOrigin("weekly_job", origin))


def _to_dict(job) -> dict:
    import kubernetes

    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def run_pod_job(values: Mapping, run_tags: Mapping[str, str]) -> dict:
    """The Job the run launcher creates for a weekly run (K8sRunLauncher._launch_k8s_job_with_args)."""
    from dagster_k8s.job import construct_dagster_k8s_job, get_job_name_from_run_id

    launcher = run_launcher(values)
    run = weekly_run(values, run_tags)
    context = launcher.get_container_context_for_run(run)
    job_config = context.get_k8s_job_config(job_image=run.job_code_origin.repository_origin.container_image,
                                            run_launcher=launcher)
    job = construct_dagster_k8s_job(job_config=job_config, args=["dagster", "api", "execute_run", "{}"],
                                    job_name=get_job_name_from_run_id(run.run_id), component="run_worker",
                                    user_defined_k8s_config=context.run_k8s_config,
                                    labels={"dagster/job": "weekly_job", "dagster/run-id": run.run_id},
                                    env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": "weekly_job"}])
    return {**_to_dict(job), "metadata": {**_to_dict(job)["metadata"], "namespace": context.namespace}}


def step_pod_job(values: Mapping, run_tags: Mapping[str, str], executor_config: Mapping, step_key: str,
                 step_tags: Mapping[str, str]) -> dict:
    """The Job the k8s job executor creates for one step: K8sStepHandler._get_container_context and
    launch_step of dagster-k8s 0.29 (run launcher + code location + executor config + the step's tags)."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (UserDefinedDagsterK8sConfig, construct_dagster_k8s_job, get_k8s_job_name,
                                 get_user_defined_k8s_config)

    launcher = run_launcher(values)
    run = weekly_run(values, run_tags)
    executor_context = K8sContainerContext(
        namespace=executor_config.get("job_namespace"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(executor_config.get("step_k8s_config", {})))
    context = (K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
               .merge(executor_context)
               .merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags))))
    job_config = context.get_k8s_job_config(job_image=run.job_code_origin.repository_origin.container_image,
                                            run_launcher=launcher)
    name = f"dagster-step-{get_k8s_job_name(run.run_id, step_key)}"
    job = construct_dagster_k8s_job(
        job_config=job_config, args=["dagster", "api", "execute_step"], job_name=name, pod_name=name,
        component="step_worker", user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": "weekly_job", "dagster/op": step_key, "dagster/run-id": run.run_id},
        env_vars=[{"name": "DAGSTER_COMPRESSED_EXECUTE_STEP_ARGS", "value": "..."},
                  {"name": "DAGSTER_RUN_JOB_NAME", "value": "weekly_job"}, {"name": "DAGSTER_RUN_STEP_KEY", "value": step_key}])
    rendered = _to_dict(job)
    rendered["metadata"]["namespace"] = context.namespace
    return rendered


def weekly_job_steps() -> dict[str, dict[str, str]]:
    """Every step of the code location's weekly_job with the tags its definition gives it."""
    sys.path.insert(0, str(REPO))
    from hm_recs.definitions import defs

    job = defs.resolve_job_def("weekly_job")
    return {node.name: dict(node.tags) for node in job.nodes_in_topological_order}


def all_objects(values: Mapping | None = None) -> list[dict]:
    """Everything the values imply for hm_recs, plus the warehouse claim (infra/k8s/), in one list."""
    sys.path.insert(0, str(REPO))
    from hm_recs.deploy import Placement

    values = values or load_values()
    placement = Placement.from_env({e["name"]: e["value"] for e in user_deployments(values)[0].get("env") or []})
    objects = [service_account(values)]
    for deployment in user_deployments(values):
        objects += [code_server_deployment(values, deployment), code_server_service(deployment)]
    objects += [o for f in sorted((INFRA / "k8s").glob("*.yaml")) for o in yaml.safe_load_all(f.read_text()) if o]
    objects.append(run_pod_job(values, placement.run_tags()))
    for step, tags in weekly_job_steps().items():
        objects.append(step_pod_job(values, placement.run_tags(), placement.executor_config(), step, tags))
    return objects


if __name__ == "__main__":
    print(yaml.safe_dump({"dagster.yaml": instance_yaml(load_values())}, sort_keys=False))
    print(yaml.safe_dump_all(all_objects(), sort_keys=False))
