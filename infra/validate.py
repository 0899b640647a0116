"""Offline checks of everything in infra/ and dagster_cloud.yaml, with tools from PyPI (`pip install .[infra]`).

helm, terraform and docker are not available where CI runs, so each check uses what is: yamllint; dockerfile-parse;
our rendering of the Helm values (infra/render.py) validated by kubernetes-validate and by Dagster's and
dagster-k8s's own config schemas; python-hcl2; dagster-cloud-cli's schema. docs/deploy.md says what this does and
does not prove. hm_recs_tests/assets/test_infra.py runs every check (that is how CI runs them);

    python infra/validate.py          # the same checks, one line each
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path

import yaml

INFRA = Path(__file__).resolve().parent
REPO = INFRA.parent
sys.path.insert(0, str(INFRA))
sys.path.insert(0, str(REPO))

import render  # noqa: E402  (infra/render.py, beside this file)

K8S_VERSION = "1.32.0"
"""The Kubernetes version whose schemas (shipped by kubernetes-validate) the rendered objects must satisfy."""

NOT_YET_READ: set[str] = set()
"""Environment variables the deployment sets ahead of the code that reads them (docs/deploy.md)."""

YAML_FILES = [*sorted(INFRA.rglob("*.yaml")), REPO / "dagster_cloud.yaml", REPO / "workspace.yaml"]


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# ---------------------------------------------------------------------------------------------------- YAML
def check_yamllint() -> None:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(INFRA / "yamllint.yaml"))
    problems = [f"{path.relative_to(REPO)}:{p.line}:{p.column} {p.desc} ({p.rule})"
                for path in YAML_FILES for p in linter.run(path.read_text(), config, str(path))]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------- Dockerfile
KNOWN_INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "EXPOSE", "CMD", "ENTRYPOINT",
                      "LABEL", "HEALTHCHECK", "VOLUME", "SHELL", "STOPSIGNAL", "ONBUILD", "COMMENT"}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides (`!` re-includes)."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def check_dockerfile() -> None:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(INFRA / "Dockerfile"))
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    unknown = {i["instruction"] for i in instructions} - KNOWN_INSTRUCTIONS
    assert not unknown, f"unknown instructions {unknown}"
    assert instructions[0]["instruction"] in ("ARG", "FROM")
    assert [i["value"] for i in instructions if i["instruction"] == "FROM"] == ["${BASE_IMAGE}"], "one stage, from BASE_IMAGE"
    args = dict(a["value"].split("=", 1) for a in instructions if a["instruction"] == "ARG" and "=" in a["value"])
    torch_pin = next(d for d in pyproject()["project"]["dependencies"] if d.startswith("torch"))
    assert torch_pin == f"torch=={args['TORCH_VERSION']}", (torch_pin, args["TORCH_VERSION"])
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu"), "the default image is the CPU build"
    extras = set(pyproject()["project"]["optional-dependencies"])
    assert set(args["EXTRAS"].split(",")) <= extras, f"EXTRAS={args['EXTRAS']} not in {extras}"
    runs = [i for i in instructions if i["instruction"] == "RUN"]
    torch_run = next(n for n, r in enumerate(runs) if "torch==${TORCH_VERSION}" in r["value"])
    assert "--index-url" in runs[torch_run]["value"]
    package_run = next(n for n, r in enumerate(runs) if 'pip install ".[' in r["value"])
    assert torch_run < package_run, "torch from its index before the package (else pip pulls CUDA torch)"
    users = [i["value"] for i in instructions if i["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image runs as a non-root user"
    assert json.loads(next(i["value"] for i in instructions if i["instruction"] == "CMD"))[0] == "dagster"
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for copy in (i for i in instructions if i["instruction"] == "COPY"):
        for source in copy["value"].split()[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not dockerignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    for heavy in (".venv/bin/python", ".git/HEAD", ".hm_recs/warehouse.duckdb", "hm_recs/__pycache__/x.pyc",
                  "benchmarks/results/x.json"):
        assert dockerignored(heavy, patterns), f"{heavy} would be sent to the docker build"


# ------------------------------------------------------------------------------------------ Helm values
def env_names_read_by_hm_recs() -> set[str]:
    source = "\n".join(p.read_text() for p in (REPO / "hm_recs").rglob("*.py"))
    return set(re.findall(r"\"(HM_RECS_[A-Z_]+)\"", source))


def check_helm_values() -> None:
    from hm_recs.deploy import EXECUTOR_ENV, WAREHOUSE_RUN_TAG

    values = render.load_values()
    tool = pyproject()["tool"]["dagster"]
    cloud = yaml.safe_load((REPO / "dagster_cloud.yaml").read_text())["locations"][0]
    terraform = terraform_variables()
    [deployment] = render.user_deployments(values)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", tool["module_name"]]
    assert deployment["image"]["repository"] == cloud["build"]["registry"]
    assert render.service_account_name(values) == values["serviceAccount"]["name"] == terraform["service_account"]
    assert render.NAMESPACE == terraform["namespace"]
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        f":role/{terraform['name_prefix']}-code-location")
    env = {e["name"]: e["value"] for e in deployment["env"]}
    unknown = {n for n in env if n.startswith("HM_RECS_")} - env_names_read_by_hm_recs() - NOT_YET_READ
    assert not unknown, f"set but read nowhere in hm_recs/: {unknown}"
    assert env[EXECUTOR_ENV] == "k8s"
    buckets = {kind: f"{terraform['name_prefix']}-{kind}-" for kind in ("raw", "artefacts", "exports")}
    for name, kind in (("HM_RECS_SOURCE", "raw"), ("HM_RECS_ARTEFACTS", "artefacts"), ("HM_RECS_EXPORTS", "exports")):
        assert env[name].startswith(f"s3://{buckets[kind]}"), (name, env[name])
    logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert env["HM_RECS_ARTEFACTS"].startswith(f"s3://{logs['bucket']}/")
    assert f"{logs['prefix']}/" in terraform_text(), "compute logs expire through a lifecycle rule on their prefix"
    mounts = values["runLauncher"]["config"]["k8sRunLauncher"]["volumeMounts"]
    warehouse = env["HM_RECS_WAREHOUSE"]
    if warehouse.startswith("s3://"):  # Parquet objects (hm_recs/storage/parquet_warehouse.py): where the role may write
        assert warehouse.startswith(f"s3://{buckets['artefacts']}"), ("HM_RECS_WAREHOUSE", warehouse)
    else:
        assert warehouse.startswith(mounts[0]["mountPath"] + "/"), "a DuckDB warehouse is on the shared volume"
    claims = {o["metadata"]["name"] for f in (INFRA / "k8s").glob("*.yaml") for o in yaml.safe_load_all(f.read_text())
              if o and o["kind"] == "PersistentVolumeClaim"}
    assert {v["persistentVolumeClaim"]["claimName"] for v in values["runLauncher"]["config"]["k8sRunLauncher"]["volumes"]} <= claims
    limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert {"key": next(iter(WAREHOUSE_RUN_TAG)), "limit": 1} in limits, "one weekly run at a time"


def check_instance_yaml() -> None:
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = render.instance_yaml(render.load_values())
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "dagster.yaml").write_text(yaml.safe_dump(instance))
        dagster_instance_config(home)  # Dagster's own instance schema (raises on any error)
    classes = {"run_launcher": K8sRunLauncher, "run_coordinator": QueuedRunCoordinator,
               "compute_logs": S3ComputeLogManager, "run_storage": PostgresRunStorage,
               "event_log_storage": PostgresEventLogStorage, "schedule_storage": PostgresScheduleStorage}
    for section, cls in classes.items():
        assert instance[section]["class"] == cls.__name__
        result = validate_config(cls.config_type(), instance[section]["config"])
        assert result.success, f"{section}: {[e.message for e in result.errors]}"


def check_kubernetes_objects() -> None:
    import kubernetes_validate

    from hm_recs.deploy import GPU_RESOURCE, Placement

    values = render.load_values()
    objects = render.all_objects(values)
    cuda_image = render.image_name(render.user_deployments(values)[0]["image"]) + "-cuda"
    gpu = Placement.from_env({"HM_RECS_EXECUTOR": "k8s", "HM_RECS_TRAINING_GPUS": "1",
                              "HM_RECS_TRAINING_IMAGE": cuda_image})
    gpu_step = render.step_pod_job(values, gpu.run_tags(), gpu.executor_config(), "two_tower_global",
                                   gpu.training_step_tags())
    for obj in [*objects, gpu_step]:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}") from exc
    jobs = [o for o in objects if o["kind"] == "Job"]
    assert len(jobs) == 1 + len(render.weekly_job_steps()), "a run pod and a pod per step"
    for job in [*jobs, gpu_step]:
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == values["serviceAccount"]["name"], "IRSA: every pod as the role's account"
        assert {v["name"] for v in pod["volumes"]} == {"warehouse"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert container["resources"]["requests"]["memory"] == container["resources"]["limits"]["memory"]
        assert {"HM_RECS_SOURCE", "HM_RECS_ARTEFACTS", "HM_RECS_WAREHOUSE"} <= {e["name"] for e in container["env"]}
    gpu_pod = gpu_step["spec"]["template"]["spec"]
    assert gpu_pod["containers"][0]["resources"]["limits"][GPU_RESOURCE] == "1"
    assert gpu_pod["containers"][0]["image"] == cuda_image, "training pods can run the CUDA build"
    assert {j["spec"]["template"]["spec"]["containers"][0]["image"] for j in jobs} == {cuda_image[:-len("-cuda")]}
    assert gpu_pod["nodeSelector"] == dict(gpu.gpu_node_selector)
    assert any(t["key"] == GPU_RESOURCE for t in gpu_pod["tolerations"])
    assert not any(GPU_RESOURCE in j["spec"]["template"]["spec"]["containers"][0]["resources"].get("limits", {})
                   for j in jobs), "with HM_RECS_TRAINING_GPUS=0 no pod asks for a GPU"


def check_executor_config() -> None:
    from dagster._config import validate_config
    from dagster_k8s import k8s_job_executor
    from dagster_k8s.job import get_user_defined_k8s_config

    from hm_recs.deploy import K8S_CONFIG_TAG, Placement

    for env in ({"HM_RECS_EXECUTOR": "k8s"}, {"HM_RECS_EXECUTOR": "k8s", "HM_RECS_TRAINING_GPUS": "2",
                                             "HM_RECS_GPU_NODE_SELECTOR": '{"karpenter.sh/nodepool": "gpu"}'}):
        placement = Placement.from_env(env)
        result = validate_config(k8s_job_executor.config_schema.config_type, placement.executor_config())
        assert result.success, [e.message for e in result.errors]
        for tags in (placement.training_step_tags(), placement.large_step_tags(), placement.run_tags()):
            parsed = get_user_defined_k8s_config(tags)  # dagster-k8s's own tag parser (raises on bad config)
            assert parsed.container_config["resources"] == json.loads(tags[K8S_CONFIG_TAG])["container_config"]["resources"]
        assert placement.executor_def().name == "k8s_job_executor"
    assert Placement.from_env({}).executor_def() is None, "locally: Dagster's default executor"
    steps = render.weekly_job_steps()  # the steps that hold every customer's ranking inputs get the large pod
    for step in ("recommendations", "evaluation_report"):
        resources = json.loads(steps[step][K8S_CONFIG_TAG])["container_config"]["resources"]
        assert resources["requests"]["memory"] == Placement.from_env(os.environ).large.memory, step


# -------------------------------------------------------------------------------------------------- Terraform
def unquote(value):
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items()}
    return value


def terraform_files() -> dict[str, dict]:
    import hcl2

    parsed = {}
    for path in sorted((INFRA / "terraform").glob("*.tf")):
        with path.open() as handle:
            parsed[path.name] = unquote(hcl2.load(handle))  # raises on any syntax error
    return parsed


def terraform_text() -> str:
    return "\n".join(p.read_text() for p in sorted((INFRA / "terraform").glob("*.tf")))


def terraform_blocks(kind: str) -> dict[tuple[str, str], dict]:
    """{(type, name): body} of every `resource` or `data` block."""
    blocks = {}
    for document in terraform_files().values():
        for entry in document.get(kind, []):
            for type_, named in entry.items():
                for name, body in named.items():
                    blocks[(type_, name)] = body
    return blocks


def terraform_variables() -> dict:
    variables = {}
    for document in terraform_files().values():
        for entry in document.get("variable", []):
            for name, body in entry.items():
                variables[name] = body.get("default")
    return variables


def check_terraform() -> None:
    files = terraform_files()
    variables = {name: body for d in files.values() for e in d.get("variable", []) for name, body in e.items()}
    undocumented = [n for n, b in variables.items() if not b.get("description") or not b.get("type")]
    assert not undocumented, f"variables without description or type: {undocumented}"
    used = set(re.findall(r"var\.([a-z_]+)", terraform_text()))
    assert used <= set(variables), f"undeclared variables {used - set(variables)}"
    assert set(variables) <= used, f"unused variables {set(variables) - used}"

    resources, data = terraform_blocks("resource"), terraform_blocks("data")
    locals_ = {k: v for d in files.values() for e in d.get("locals", []) for k, v in e.items()}
    assert set(locals_["buckets"]) == {"raw", "artefacts", "exports"}
    assert resources[("aws_s3_bucket", "this")]["for_each"] == "${local.buckets}"
    for per_bucket in ("aws_s3_bucket_public_access_block", "aws_s3_bucket_versioning",
                       "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_ownership_controls",
                       "aws_s3_bucket_policy"):
        assert resources[(per_bucket, next(n for t, n in resources if t == per_bucket))]["for_each"] == \
            "${aws_s3_bucket.this}", f"{per_bucket} must cover every bucket"
    block = resources[("aws_s3_bucket_public_access_block", "this")]
    assert all(block[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                          "restrict_public_buckets"))
    assert resources[("aws_s3_bucket_versioning", "this")]["versioning_configuration"][0]["status"] == "Enabled"
    sse = resources[("aws_s3_bucket_server_side_encryption_configuration", "this")]["rule"][0]
    assert "AES256" in sse["apply_server_side_encryption_by_default"][0]["sse_algorithm"]
    tls = data[("aws_iam_policy_document", "tls_only")]["statement"][0]
    assert tls["effect"] == "Deny" and tls["condition"][0]["variable"] == "aws:SecureTransport"
    exports = resources[("aws_s3_bucket_lifecycle_configuration", "exports")]
    assert exports["bucket"] == '${aws_s3_bucket.this["exports"].id}'
    assert exports["rule"][0]["expiration"][0]["days"] == "${var.exports_retention_days}"

    trust = data[("aws_iam_policy_document", "assume_from_service_account")]["statement"][0]
    assert trust["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert trust["principals"][0] == {"type": "Federated", "identifiers": ["${var.oidc_provider_arn}"],
                                      "__is_block__": True}
    assert {c["variable"]: c["values"] for c in trust["condition"]} == {
        "${var.oidc_issuer}:sub": ["system:serviceaccount:${var.namespace}:${var.service_account}"],
        "${var.oidc_issuer}:aud": ["sts.amazonaws.com"]}
    policy = data[("aws_iam_policy_document", "code_location")]
    grants: dict[str, set[str]] = {}
    for statement in policy["statement"]:
        assert statement["effect"] == "Allow"
        assert not any("*" in a for a in statement["actions"]), f"wildcard action in {statement['sid']}"
        for resource in statement["resources"]:
            bucket = re.fullmatch(r'\$\{aws_s3_bucket\.this\["(raw|artefacts|exports)"\]\.arn\}(/\*)?', resource)
            assert bucket, f"{statement['sid']}: {resource} is not one of the three buckets"
            grants.setdefault(bucket.group(1) + (bucket.group(2) or ""), set()).update(statement["actions"])
    assert grants["raw/*"] == {"s3:GetObject"}, "raw is read-only"
    assert grants["artefacts/*"] >= {"s3:GetObject", "s3:PutObject"} and grants["exports/*"] >= {"s3:PutObject"}
    assert not any("Delete" in a for actions in grants.values() for a in actions)
    assert set(policy["dynamic"][0]["statement"]["content"][0]["actions"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    role_policy = resources[("aws_iam_role_policy", "code_location")]
    assert role_policy["policy"] == "${data.aws_iam_policy_document.code_location.json}"
    assert resources[("aws_iam_role", "code_location")]["assume_role_policy"] == \
        "${data.aws_iam_policy_document.assume_from_service_account.json}"


# ------------------------------------------------------------------------------------------ dagster_cloud.yaml
def check_dagster_cloud_yaml() -> None:
    from dagster_cloud_cli.config.merger import DagsterCloudConfigDefaultsMerger
    from dagster_cloud_cli.config.models import load_dagster_cloud_yaml
    from dagster_k8s.container_context import K8sContainerContext

    text = (REPO / "dagster_cloud.yaml").read_text()
    processed = DagsterCloudConfigDefaultsMerger().process(load_dagster_cloud_yaml(text))  # the CLI's own schema
    [location] = processed.locations
    assert location.code_source.module_name == pyproject()["tool"]["dagster"]["module_name"]
    assert (REPO / location.build.directory / "pyproject.toml").exists()
    context = K8sContainerContext.create_from_config(location.container_context)  # dagster-k8s's schema
    run_config = context.run_k8s_config
    assert run_config.pod_spec_config["service_account_name"] == terraform_variables()["service_account"]
    assert context.namespace == terraform_variables()["namespace"]
    assert run_config.container_config["volume_mounts"][0]["mount_path"] == "/data"
    cloud_env = dict(v.split("=", 1) for v in location.container_context["k8s"]["env_vars"])
    helm_env = {e["name"]: e["value"] for e in render.user_deployments(render.load_values())[0]["env"]}
    differing = {k for k in cloud_env if k.startswith("HM_RECS_") and cloud_env[k] != helm_env.get(k)}
    assert not differing, f"dagster_cloud.yaml and the Helm values disagree on {differing}"


CHECKS: list[Callable[[], None]] = [check_yamllint, check_dockerfile, check_helm_values, check_instance_yaml,
                                    check_kubernetes_objects, check_executor_config, check_terraform,
                                    check_dagster_cloud_yaml]


def main() -> int:
    failed = 0
    for check in CHECKS:
        try:
            check()
            print(f"ok    {check.__name__}")
        except Exception as exc:  # report every check, then fail
            failed += 1
            print(f"FAIL  {check.__name__}: {type(exc).__name__}: {exc}")
    print(f"infra: {len(CHECKS) - failed} checks ok, {failed} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
