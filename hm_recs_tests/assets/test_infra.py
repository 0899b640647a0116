"""infra/ and dagster_cloud.yaml, validated offline (infra/validate.py; what it proves: docs/deploy.md).

The tools come with the `infra` extra, which the `test` extra includes; without them the checks are skipped."""

import importlib.util

import pytest

from hm_recs_tests.support import REPO

TOOLS = (
    "yamllint",
    "kubernetes_validate",
    "hcl2",
    "dockerfile_parse",
    "dagster_cloud_cli",
    "dagster_k8s",
    "dagster_aws",
    "dagster_postgres",
)
missing = [name for name in TOOLS if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"pip install -e '.[infra]' for {missing}")


def load_validator():
    spec = importlib.util.spec_from_file_location("hm_recs_infra_validate", REPO / "infra" / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK_NAMES = [
    "check_yamllint",
    "check_dockerfile",
    "check_helm_values",
    "check_instance_yaml",
    "check_kubernetes_objects",
    "check_executor_config",
    "check_terraform",
    "check_dagster_cloud_yaml",
]


@pytest.fixture(scope="module")
def validator():
    return load_validator()


def test_every_check_is_run_here(validator):
    assert [check.__name__ for check in validator.CHECKS] == CHECK_NAMES


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_infra(validator, name):
    getattr(validator, name)()


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("hm_recs/definitions.py", False),
        ("pyproject.toml", False),
        (".venv/bin/python", True),
        (".git/HEAD", True),
        ("hm_recs/core/__pycache__/io.cpython-311.pyc", True),
        ("docs/deploy.md", True),
    ],
)
def test_dockerignore_matching(validator, path, ignored):
    patterns = ["**", "!pyproject.toml", "!hm_recs", "**/__pycache__"]
    assert validator.dockerignored(path, patterns) is ignored
