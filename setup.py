"""Only for the optional compiled build; everything else about the package is in pyproject.toml.

`PAYMESH_COMPILE=1 pip install --no-build-isolation .` (with the dev extras' mypy in the
environment) compiles the fraud engine's hot modules, listed in pyproject's
`[tool.paymesh] compiled`, to C extensions with mypyc: the fraud replay runs about 1.4x as
fast with the learned model and 2x with the rules alone, with the same decisions
(`make bench-fraud-compiled`). Without the variable nothing is compiled, and `make dev`'s
editable install never sets it: in an editable install the extension modules would be built
beside the source and shadow it while it is edited.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup


def compiled_extensions() -> list[Any]:
    if os.environ.get("PAYMESH_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # only needed for this build

    pyproject = tomllib.loads((Path(__file__).parent / "pyproject.toml").read_text())
    config = f"--config-file={Path(__file__).parent / 'mypyc.ini'}"
    return list(mypycify([config, *pyproject["tool"]["paymesh"]["compiled"]], opt_level="3"))


setup(ext_modules=compiled_extensions())
