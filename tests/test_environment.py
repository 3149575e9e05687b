"""``environment.yml`` (conda) has the same dependencies as ``pyproject.toml``: kept in sync.

Every runtime and ``dev`` dependency of pyproject.toml must be in environment.yml under its
conda-forge name with the same version constraint (a lower bound, here), and environment.yml must
hold nothing else but ``python``, ``pip`` and the editable install of the package itself. Other
extras (``bench``: dlt for bench/peers.py) are optional and stay out of it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: PyPI name (normalised) → conda-forge name, where they differ.
CONDA_NAMES = {
    "duckdb": "python-duckdb",
    "nbconvert": "nbconvert-core",  # nbconvert on conda-forge adds pandoc; PyPI's does not
    "playwright": "playwright-python",
}
#: In environment.yml but not a dependency in pyproject.toml.
CONDA_ONLY = {"pip"}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;#]*)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraint(spec: str) -> str:
    """``>=2.0`` however it is spaced; several parts sorted, so order does not matter."""
    return ",".join(sorted(part.replace(" ", "") for part in spec.split(",") if part.strip()))


def _split(requirement: str) -> tuple[str, str]:
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    return _normalise(match.group(1)), _constraint(match.group(2))


def mismatches(pyproject_text: str, environment_text: str) -> list[str]:
    """What differs between the two files, one line per package (empty: in sync)."""
    project = tomllib.loads(pyproject_text)["project"]
    wanted: dict[str, tuple[str, str]] = {"python": ("requires-python", project["requires-python"])}
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        name, constraint = _split(requirement)
        wanted[CONDA_NAMES.get(name, name)] = (name, constraint)
    environment = yaml.safe_load(environment_text)
    have: dict[str, str] = {}
    pip: list[str] = []
    for entry in environment.get("dependencies") or []:
        if isinstance(entry, dict):
            pip.extend(entry.get("pip") or [])
            # A package conda-forge does not carry comes from PyPI through the pip section.
            for requirement in entry.get("pip") or []:
                if str(requirement)[:1].isalpha():  # a package, not "-e ." or a path
                    name, constraint = _split(str(requirement))
                    have[name] = constraint
        else:
            name, constraint = _split(str(entry))
            have[name] = constraint
    problems = []
    for conda_name, (pypi_name, constraint) in wanted.items():
        shown = pypi_name if pypi_name == conda_name else f"{pypi_name} (conda: {conda_name})"
        if conda_name not in have:
            problems.append(
                f"{shown}: in pyproject.toml ({constraint}), missing in environment.yml"
            )
        elif _constraint(have[conda_name]) != _constraint(constraint):
            problems.append(
                f"{shown}: pyproject.toml requires {constraint or 'any version'}, "
                f"environment.yml has {have[conda_name] or 'any version'}"
            )
    for conda_name in sorted(set(have) - set(wanted) - CONDA_ONLY):
        problems.append(f"{conda_name}: in environment.yml, not a dependency in pyproject.toml")
    if "-e ." not in pip:
        problems.append("environment.yml: the pip section must install the package (-e .)")
    return problems


def _texts() -> tuple[str, str]:
    return (
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
        (ROOT / "environment.yml").read_text(encoding="utf-8"),
    )


def test_environment_yml_has_every_dependency_of_pyproject_with_its_bound() -> None:
    problems = mismatches(*_texts())
    assert not problems, "environment.yml is out of sync with pyproject.toml:\n" + "\n".join(
        problems
    )


def test_environment_yml_is_a_conda_forge_environment_named_cmtoolkit() -> None:
    environment = yaml.safe_load(_texts()[1])
    assert environment["name"] == "cmtoolkit"
    assert environment["channels"][0] == "conda-forge"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda p, e: (p, e.replace("  - pandas >=2.2\n", "")), "pandas"),
        (lambda p, e: (p, e.replace("python-duckdb >=2.0", "python-duckdb >=1.4")), "duckdb"),
        (lambda p, e: (p.replace('"ruff>=0.6"', '"ruff>=0.7"'), e), "ruff"),
        (lambda p, e: (p.replace('"orjson>=3.10",', '"orjson>=3.10",\n  "rich>=13",'), e), "rich"),
        (lambda p, e: (p, e.replace("  - pytest-timeout >=2.3\n", "")), "pytest-timeout"),
        (lambda p, e: (p, e.replace("python >=3.11", "python >=3.10")), "python"),
        (lambda p, e: (p, e.replace("  - pip\n", "  - pip\n  - scipy\n")), "scipy"),
        (lambda p, e: (p, e.replace("- -e .", "- .")), "-e ."),
    ],
)
def test_a_difference_fails_naming_the_package(
    edit: Callable[[str, str], tuple[str, str]], named: str
) -> None:
    pyproject, environment = edit(*_texts())
    problems = mismatches(pyproject, environment)
    assert len(problems) == 1, problems
    assert named in problems[0]
