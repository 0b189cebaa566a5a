"""Function packages staged at synth time without Docker: shared domain, the function's package, nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from stacks.constructs.lambda_code import REPOSITORY_ROOT, stage_function_package
from tests.infrastructure.conftest import Synthesized

FUNCTIONS = ("bridge_certificate", "thing_registration", "status_callback", "teardown")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_package_holds_the_domain_and_only_its_own_function(tmp_path: Path, function: str) -> None:
    staged = stage_function_package(function, tmp_path)

    assert {path.name for path in staged.iterdir()} == {"bridge_domain", "lambdas"}
    assert {path.name for path in (staged / "lambdas").iterdir()} == {"__init__.py", function}
    assert (staged / "bridge_domain" / "connection.py").is_file()
    assert not list(staged.rglob("__pycache__"))


def test_lambdas_holds_only_function_packages() -> None:
    # Anything else under lambdas/ (such as the bulk-register command, in cli/) would look like a function to deploy.
    packages = {path.name for path in (REPOSITORY_ROOT / "lambdas").iterdir() if path.is_dir()} - {"__pycache__"}

    assert packages == set(FUNCTIONS)
    assert all((REPOSITORY_ROOT / "lambdas" / package / "handler.py").is_file() for package in packages)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_package_leaves_out_the_command_line_tools(tmp_path: Path, function: str) -> None:
    staged = stage_function_package(function, tmp_path)

    assert not [path for path in staged.rglob("*") if path.name in {"cli", "bulk_register.py"}]


def test_staging_again_replaces_the_earlier_copy(tmp_path: Path) -> None:
    first = stage_function_package("teardown", tmp_path)
    (first / "stale.txt").write_text("left over")

    second = stage_function_package("teardown", tmp_path)

    assert not (second / "stale.txt").exists()


@pytest.mark.infrastructure
def test_every_handler_string_names_a_function_in_its_package(synthesized_example: Synthesized) -> None:
    handlers = [
        function["Handler"]
        for function in synthesized_example.properties("AWS::Lambda::Function")
        if str(function.get("Handler", "")).startswith("lambdas.")
    ]
    staged = synthesized_example.directory / "lambda-packages"

    assert len(handlers) == 5
    for handler in handlers:
        module, _, name = handler.rpartition(".")
        package = module.split(".")[1]
        source = staged / package / Path(*module.split(".")).with_suffix(".py")
        defined = {node.name for node in ast.parse(source.read_text()).body if isinstance(node, ast.FunctionDef)}
        assert name in defined, handler


@pytest.mark.infrastructure
def test_functions_run_on_arm64_with_the_arm64_powertools_layer(synthesized_example: Synthesized) -> None:
    ours = [
        function
        for function in synthesized_example.properties("AWS::Lambda::Function")
        if str(function.get("Handler", "")).startswith("lambdas.")
    ]
    layer_parameters = [
        parameter["Default"]
        for template in synthesized_example.templates.values()
        for parameter in template.get("Parameters", {}).values()
        if str(parameter.get("Default", "")).startswith("/aws/service/powertools/")
    ]

    assert len(ours) == 5
    assert all(function["Architectures"] == ["arm64"] for function in ours)
    assert layer_parameters
    assert all(path.startswith("/aws/service/powertools/python/arm64/python3.11/") for path in layer_parameters)
