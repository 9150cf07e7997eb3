"""AWS without an account: moto's in-process services, with credentials that name nothing real.

`moto_aws()` sets fake credentials and the region in the environment (and points boto3 away
from any profile, credentials file or instance metadata on the machine, so nothing real is
read or reached), then enters `moto.mock_aws`: every boto3 client created inside talks to
moto in this process. On exit moto forgets everything and the environment is restored.

moto is not thread-safe: code under test must make its AWS calls one at a time (the
DynamoDB store runs them all on one thread, `paymesh.adapters.dynamodb.store`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from moto import mock_aws
from moto.core.config import DefaultConfig

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account id

_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # No file of the machine's (~/.aws) is read, and the metadata endpoint is never asked.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    # The regional endpoints moto knows: botocore would otherwise send DynamoDB Streams
    # calls to `<account>.streams-ddb.<region>.amazonaws.com`, which moto 5.2 answers 404.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}
_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB")

#: Step Functions executions run their states (moto's default only records them).
MOTO_CONFIG: DefaultConfig = {"stepfunctions": {"execute_state_machine": True}}


@contextlib.contextmanager
def fake_credentials() -> Iterator[None]:
    """The environment `moto_aws` runs in, without moto (for code that only builds clients)."""
    saved = {name: os.environ.get(name) for name in (*_ENVIRONMENT, *_UNSET)}
    os.environ.update(_ENVIRONMENT)
    for name in _UNSET:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_aws() -> Iterator[None]:
    """Every AWS service in this process, played by moto, for the `with` block."""
    with fake_credentials(), mock_aws(config=MOTO_CONFIG):
        yield
