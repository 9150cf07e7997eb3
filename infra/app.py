"""The CDK app, for the CDK CLI (`cd infra && npx cdk synth`, see cdk.json) or on its own:

    python -m infra.app [-c prefix=paymesh] [-c review_timeout_seconds=259200] [-c ...]

synthesises the cloud assembly (into build/cdk.out, or where the CLI says) with cdk-nag's
AWS Solutions checks; it fails on any finding not acknowledged in code. Offline: nothing is
looked up in an account.
"""

from __future__ import annotations

import argparse
import os
import sys

from infra.paths import ROOT
from infra.synth import STACK_ID, build_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.app", description=__doc__)
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a CDK context value (prefix, review_timeout_seconds, retry_base_seconds)",
    )
    args = parser.parse_args(argv)
    context = dict(item.split("=", 1) for item in args.context)
    # Under the CDK CLI, CDK_OUTDIR names the assembly directory. Read here and passed on:
    # jsii's Node process keeps the environment it started with.
    outdir = os.environ.get("CDK_OUTDIR") or str(ROOT / "build" / "cdk.out")
    assembly = build_app(outdir, context=context or None).synth()
    stack = assembly.get_stack_artifact(STACK_ID)
    print(
        f"{stack.stack_name}: {len(stack.template['Resources'])} resources,"
        f" {os.path.join(assembly.directory, stack.template_file)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
