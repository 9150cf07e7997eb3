"""Synthesis: in-process, cached on disk, parameterised; and the CDK app's entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import app, synth
from tests.infra.conftest import PREFIX, named


def test_a_second_synthesis_is_read_from_the_cache(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert synth.cache_path(prefix=PREFIX).is_file()

    def synthesise_again(**params: Any) -> dict[str, Any]:
        raise AssertionError("synthesised again instead of reading the cache")

    monkeypatch.setattr(synth, "synthesize", synthesise_again)
    assert synth.template(prefix=PREFIX) == template


def test_the_cache_key_follows_the_parameters_with_defaults_filled_in() -> None:
    assert synth.cache_key() == synth.cache_key(prefix="paymesh", retry_base_seconds=60)
    assert synth.cache_key(prefix=PREFIX) != synth.cache_key()
    assert synth.cache_key(retry_base_seconds=30) != synth.cache_key()
    with pytest.raises(TypeError, match="shard_count"):
        synth.cache_key(shard_count=2)


def test_parameters_reach_the_names_and_the_workflows() -> None:
    template = synth.template(prefix="pmparams", review_timeout_seconds=600, retry_base_seconds=5)
    _, review = named(
        template, "AWS::StepFunctions::StateMachine", "StateMachineName", "pmparams-review"
    )
    _, retry = named(
        template, "AWS::StepFunctions::StateMachine", "StateMachineName", "pmparams-retry"
    )
    review_states = json.loads(review["Properties"]["DefinitionString"])["States"]
    retry_states = json.loads(retry["Properties"]["DefinitionString"])["States"]
    assert review_states["AwaitDecision"]["TimeoutSeconds"] == 600
    assert [retry_states[f"Wait{n}"]["Seconds"] for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    named(template, "AWS::Events::EventBus", "Name", "pmparams-bus")


def test_the_app_synthesises_into_the_assembly_the_cdk_cli_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDK_OUTDIR", str(tmp_path))
    assert app.main(["-c", "prefix=pmapp"]) == 0
    written = json.loads((tmp_path / f"{synth.STACK_ID}.template.json").read_text())
    named(written, "AWS::Lambda::Function", "FunctionName", "pmapp-api")
    assert f"{synth.STACK_ID}: {len(written['Resources'])} resources" in capsys.readouterr().out
