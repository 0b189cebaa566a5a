"""`make mutation`: mutmut 3 on each module of `[tool.mutmut] paths_to_mutate`, against the unit tests that cover it.

mutmut alone runs one selection of tests for every module and reports one total. This driver runs it once per module,
each in its own copy of the tree under `mutants/<module>/` (so the runs neither share nor overwrite results), with
only that module's tests, then prints a table (mutants, killed, score) and every surviving mutant as a diff.

What mutmut 3 does not mutate, so no score here covers it: module- and class-level statements (constants such as a
quota, pydantic `Field(ge=…, le=…)` limits) and decorated functions (`@field_validator`, `@model_validator`,
`@property`, `@classmethod`). Those limits are pinned by the limit-table tests instead. mutmut also skips every
decorated class; this driver lets it into `@dataclass` classes (the token bucket, the topic pattern, the budget), whose
undecorated methods its trampolines handle like any other class's.

    .venv/bin/python scripts/mutation.py [--fail-under 90] [--max-children N] [module.py ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = REPO / "mutants"
REPORT_NAME = "report.json"
# Copied into each run's tree: what the unit tests import, and the pytest configuration.
TREE_ENTRIES = ("bridge_container", "bridge_domain", "devtools", "lambdas", "cli", "stacks", "tests", "config")
TREE_FILES = ("pyproject.toml", "app.py", "cdk.json")
TREE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")

# The unit tests that exercise each module, directly or through the module that uses it.
INGRESS_TESTS = (
    "tests/unit/bridge/test_ingress.py",
    "tests/unit/bridge/test_ingress_auth.py",
    "tests/unit/bridge/test_ingress_http.py",
    "tests/unit/bridge/test_ingress_properties.py",
)
TESTS_BY_MODULE: dict[str, tuple[str, ...]] = {
    "bridge_domain/topics.py": ("tests/unit/domain/test_topics.py", "tests/unit/domain/test_quotas.py"),
    "bridge_domain/connection.py": ("tests/unit/domain/test_connection.py", "tests/unit/domain/test_quotas.py"),
    "bridge_domain/ratelimit.py": ("tests/unit/domain/test_ratelimit.py",),
    "bridge_domain/budget.py": ("tests/unit/domain/test_budget.py", "tests/unit/uplink/test_limits.py"),
    "bridge_container/ingress/thingpark.py": (
        "tests/unit/bridge/test_ingress_thingpark.py",
        *INGRESS_TESTS,
        "tests/unit/downlink/test_thingpark_token.py",
    ),
    "bridge_container/ingress/fields.py": (
        "tests/unit/bridge/test_ingress_fields.py",
        "tests/unit/bridge/test_ingress_thingpark.py",
        *INGRESS_TESTS,
    ),
    "bridge_container/uplink/limits.py": ("tests/unit/uplink/test_limits.py", "tests/unit/uplink/test_pool.py"),
    "bridge_container/uplink/pool.py": ("tests/unit/uplink/test_pool.py",),
}
# Survivors count against the score; timeouts and crashes mean the tests noticed the mutant.
DETECTED = frozenset({"killed", "timeout", "segfault"})


@dataclass(frozen=True)
class ModuleReport:
    module: str
    statuses: dict[str, str]
    survivor_diffs: dict[str, str]
    wall_secs: float

    @property
    def detected(self) -> int:
        return sum(status in DETECTED for status in self.statuses.values())

    @property
    def score(self) -> float:
        return 100.0 * self.detected / len(self.statuses) if self.statuses else 100.0


def configured_modules() -> list[str]:
    settings: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    modules = [str(path) for path in settings["paths_to_mutate"]]
    unmapped = [module for module in modules if module not in TESTS_BY_MODULE]
    if unmapped:
        raise SystemExit(f"no unit tests chosen for {unmapped}: add them to TESTS_BY_MODULE in {__file__}")
    return modules


def run_dir(module: str) -> Path:
    return WORK_DIR / module.removesuffix(".py").replace("/", ".")


def prepare(module: str) -> Path:
    """A fresh run directory: the module to mutate, and under `mutants/` the tree its tests import."""
    root = run_dir(module)
    shutil.rmtree(root, ignore_errors=True)
    tree = root / "mutants"
    for entry in TREE_ENTRIES:
        shutil.copytree(REPO / entry, tree / entry, ignore=TREE_IGNORE)
    for name in TREE_FILES:
        shutil.copy2(REPO / name, tree / name)
    (root / module).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / module, root / module)
    return root


def run_module(module: str, max_children: int) -> ModuleReport:
    root = prepare(module)
    started = time.monotonic()
    with (root / "mutmut.log").open("w") as log:
        # Its own interpreter: mutmut keeps its state in globals and forks one child per mutant.
        completed = subprocess.run(
            [sys.executable, __file__, "--worker", module, "--max-children", str(max_children)],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    wall_secs = time.monotonic() - started
    if completed.returncode != 0:
        sys.stdout.write((root / "mutmut.log").read_text()[-4000:])
        raise SystemExit(f"mutmut failed on {module} (exit {completed.returncode}); log in {root / 'mutmut.log'}")
    report = json.loads((root / REPORT_NAME).read_text())
    return ModuleReport(module, report["statuses"], report["survivor_diffs"], wall_secs)


def mutate_dataclass_methods() -> None:
    """Let mutmut mutate the undecorated methods of `@dataclass` classes, which it skips with every decorated class.

    A class decorator runs once at definition; mutmut only mutates inside methods, and its trampolines are class
    attributes annotated `ClassVar`, which a dataclass (slotted or not) leaves out of its fields.
    """
    import libcst as cst
    from mutmut.file_mutation import MutationVisitor

    skip = MutationVisitor._skip_node_and_children

    def is_dataclass_decorator(decorator: cst.Decorator) -> bool:
        target = decorator.decorator
        name = target.func if isinstance(target, cst.Call) else target
        return isinstance(name, cst.Name) and name.value == "dataclass"

    def skip_unless_dataclass(visitor: MutationVisitor, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.ClassDef) and node.decorators and all(map(is_dataclass_decorator, node.decorators)):
            return False
        return bool(skip(visitor, node))

    MutationVisitor._skip_node_and_children = skip_unless_dataclass


def work(module: str, max_children: int) -> None:
    """In the run directory: mutmut on one module with its tests, then the report the driver reads."""
    import mutmut
    from _pytest.nodes import Node
    from hypothesis import settings
    from mutmut import __main__ as mutmut_main

    # mutmut 3.3.1 maps tests to functions through `item._nodeid`, an attribute pytest 9 no longer has.
    if not hasattr(Node, "_nodeid"):
        Node._nodeid = property(lambda node: node.nodeid)  # type: ignore[attr-defined]
    mutate_dataclass_methods()
    # No deadline (a mutant runs on a loaded machine) and the same examples every run, so a kill is reproducible.
    settings.register_profile("mutation", deadline=None, derandomize=True, database=None, print_blob=False)
    settings.load_profile("mutation")
    mutmut.config = mutmut_main.Config(
        also_copy=[],
        do_not_mutate=[],
        max_stack_depth=-1,
        debug=False,
        paths_to_mutate=[Path(module)],
        tests_dir=list(TESTS_BY_MODULE[module]),
    )
    mutmut_main._run((), max_children)
    data = mutmut_main.SourceFileMutationData(path=Path(module))
    data.load()
    statuses = {name: mutmut_main.status_by_exit_code[code] for name, code in data.exit_code_by_key.items()}
    mutated = mutmut_main.read_mutants_module(module)  # parsed once: mutmut's own diff parses it per mutant
    diffs = {
        name: survivor_diff(mutmut_main, mutated, name, module)
        for name, status in statuses.items()
        if status not in DETECTED
    }
    Path(REPORT_NAME).write_text(json.dumps({"statuses": statuses, "survivor_diffs": diffs}, indent=1))


def survivor_diff(mutmut_main: Any, mutated: Any, name: str, module: str) -> str:
    import difflib

    import libcst as cst

    original = cst.Module([mutmut_main.read_original_function(mutated, name)]).code.strip().splitlines()
    mutant = cst.Module([mutmut_main.read_mutant_function(mutated, name)]).code.strip().splitlines()
    return "\n".join(difflib.unified_diff(original, mutant, fromfile=module, tofile=module, lineterm=""))


def print_reports(reports: list[ModuleReport], fail_under: float) -> None:
    for report in reports:
        for name, diff in report.survivor_diffs.items():
            print(f"\n# {name}: {report.statuses[name]}\n{diff}")
    width = max(len(report.module) for report in reports)
    print(f"\n{'module':<{width}}  mutants  killed  score   secs")
    for report in reports:
        flag = "" if report.score >= fail_under else f"  < {fail_under:g} %"
        print(
            f"{report.module:<{width}}  {len(report.statuses):>7}  {report.detected:>6}  "
            f"{report.score:>5.1f}%  {report.wall_secs:>5.0f}{flag}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: [tool.mutmut] paths_to_mutate)")
    parser.add_argument("--fail-under", type=float, default=90.0, help="exit 1 if a module scores below (%%)")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work(args.worker, args.max_children)
        return
    modules = args.modules or configured_modules()
    unknown = [module for module in modules if module not in TESTS_BY_MODULE]
    if unknown:
        parser.error(f"not a mutated module: {unknown}")
    reports = []
    for module in modules:
        print(f"mutating {module} against {len(TESTS_BY_MODULE[module])} test file(s)", flush=True)
        reports.append(run_module(module, args.max_children))
    print_reports(reports, args.fail_under)
    if any(report.score < args.fail_under for report in reports):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
