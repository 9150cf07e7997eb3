"""Where things are, for the modules that must not load the CDK to know."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The functions' code: paymesh's source tree (`paymesh.…` importable from the zip's root).
SOURCE = ROOT / "src"
