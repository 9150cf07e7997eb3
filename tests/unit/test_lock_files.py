"""The lock files install what pyproject.toml asks for: `make` installs from them, so a pin
changed in pyproject.toml without `make lock` would silently install the old version (or
not install a new dependency at all)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = PIN.match(requirement.replace(" ", ""))
        assert match, f"{requirement!r} in pyproject.toml is not pinned with =="
        found[_name(match.group(1))] = match.group(2)
    return found


def _locked(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    pins = {_name(m.group(1)): m.group(2) for m in map(PIN.match, text.splitlines()) if m}
    # Every pin carries its hashes: pip then installs in hash-checking mode.
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split()[0] for b in blocks if PIN.match(b) and "--hash=sha256:" not in b]
    assert not unhashed, f"{lock}: pins without hashes: {unhashed}"
    return pins


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def test_the_runtime_lock_pins_every_runtime_dependency_as_pyproject_does() -> None:
    wanted = _wanted(list(_project()["dependencies"]))  # type: ignore[call-overload]
    locked = _locked("requirements.lock")
    assert {n: locked.get(n) for n in wanted} == wanted, "run `make lock`"


def test_the_dev_lock_pins_every_dependency_and_dev_tool_as_pyproject_does() -> None:
    project = _project()
    extras: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    wanted = _wanted([*project["dependencies"], *extras["dev"]])  # type: ignore[misc]
    locked = _locked("requirements-dev.lock")
    assert {n: locked.get(n) for n in wanted} == wanted, "run `make lock`"


def test_the_two_locks_agree_on_every_package_they_share() -> None:
    runtime, dev = _locked("requirements.lock"), _locked("requirements-dev.lock")
    assert {n: dev.get(n) for n in runtime} == runtime
