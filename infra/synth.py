"""Synthesis in-process: `template(**params)` is the CloudFormation template of
`PaymeshStack` (cdk-nag's AWS Solutions checks applied: synthesis fails on any finding not
acknowledged in code), cached on disk.

A jsii synthesis costs tens of seconds, so the template is kept in `build/cdk-cache/`,
keyed by a hash of everything it is built from: infra/*.py, the manifest, the table specs,
the workflow definitions, the default rules, the parameters and the versions of aws-cdk-lib
and cdk-nag. (The rest of `src/` is the functions' code asset: a change there changes the
asset's hash in the template, not what the tests deploy or check, so it does not invalidate
the cache; `python -m infra.app` never uses it.)

The stack is synthesised with the default synthesizer minus its bootstrap-version rule, so
the template deploys anywhere, moto included, without a CDK bootstrap stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.parameters import PARAMETERS, parameters
from infra.paths import ROOT

if TYPE_CHECKING:
    from aws_cdk import App

CACHE = ROOT / "build" / "cdk-cache"
STACK_ID = "Paymesh"
_PAYMESH = ROOT / "src" / "paymesh"
INPUTS = (
    _PAYMESH / "entrypoints" / "aws" / "manifest.py",
    _PAYMESH / "adapters" / "dynamodb" / "tables.py",
    _PAYMESH / "adapters" / "aws" / "workflows.py",
    _PAYMESH / "service" / "default_rules.json",
)


def cache_key(**params: Any) -> str:
    digest = hashlib.sha256()
    for path in (*sorted(Path(__file__).parent.glob("*.py")), *INPUTS):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(json.dumps(parameters(**params), sort_keys=True).encode())
    for package in ("aws-cdk-lib", "cdk-nag"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()[:32]


def cache_path(**params: Any) -> Path:
    return CACHE / f"{cache_key(**params)}.json"


def template(**params: Any) -> dict[str, Any]:
    """The stack's CloudFormation template: from the cache, or synthesised and cached."""
    path = cache_path(**params)
    try:
        cached: dict[str, Any] = json.loads(path.read_text())
        return cached
    except (FileNotFoundError, ValueError):
        pass
    result = synthesize(**params)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a concurrent reader sees the old file or the whole new one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(result, out, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result


def synthesize(**params: Any) -> dict[str, Any]:
    """A fresh synthesis (no cache), in a temporary cloud assembly."""
    with tempfile.TemporaryDirectory(prefix="paymesh-cdk-") as outdir:
        app = build_app(outdir, **params)
        assembly = app.synth()
        stack: dict[str, Any] = assembly.get_stack_artifact(STACK_ID).template
        return stack


def build_app(
    outdir: str | None = None, context: dict[str, Any] | None = None, **params: Any
) -> App:
    """The CDK app: the stack, and cdk-nag's AWS Solutions pack as a validation plugin.
    A parameter not given is taken from the CDK context (`-c prefix=...`), then defaulted."""
    from aws_cdk import App, DefaultStackSynthesizer, Validations
    from cdk_nag import AwsSolutionsChecks

    from infra.stack import PaymeshStack

    app = App(outdir=outdir, context=context, analytics_reporting=False)
    for name, (kind, _) in PARAMETERS.items():
        value = app.node.try_get_context(name)
        if name not in params and value is not None:
            params[name] = kind(value)
    PaymeshStack(
        app,
        STACK_ID,
        synthesizer=DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
        description="paymesh: event-driven payments on AWS (issue 15)",
        **parameters(**params),
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app
