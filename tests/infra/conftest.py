"""One synthesis for the whole session (and, through its disk cache, for later sessions)."""

from __future__ import annotations

from typing import Any

import pytest

from infra import synth

PREFIX = "pmtest"


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return synth.template(prefix=PREFIX)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical id."""
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def named(template: dict[str, Any], kind: str, prop: str, name: str) -> tuple[str, dict[str, Any]]:
    """The resource of `kind` whose property `prop` is `name` (its logical id and itself)."""
    found = [(k, r) for k, r in resources(template, kind).items() if r["Properties"][prop] == name]
    assert len(found) == 1, f"{kind} {prop}={name}: {len(found)} in the template"
    return found[0]
