"""The AWS deployment for the end-to-end tests: the CDK stack synthesised, deployed into moto,
with the PSP sandboxes on loopback and the `Cloud` harness that plays what moto cannot run
(tests/aws/harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws.harness import REVIEW_AMOUNT, Cloud, deployed

__all__ = ["REVIEW_AMOUNT"]

PREFIX = "pmtest"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from infra.synth import template as synth

    return synth(prefix=PREFIX)


@pytest.fixture(scope="module")
def cloud(template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    from infra.deploy_local import deploy

    data_dir = tmp_path_factory.mktemp("aws-data")
    with deployed(lambda: deploy(template), data_dir) as cloud:
        yield cloud
