"""Confirmation templates (Jinja2): the packaged defaults, and a merchant's own over them.

A merchant's templates live in `<templates_dir>/<merchant_id>/<name>.{subject,txt,sms}`; any
file it lacks falls back to the packaged one, so a merchant may override only its SMS. They
are plain text (no HTML escaping), rendered in Jinja's sandbox with undefined names as
errors: a mistake in a template is a broken template, not a message with a blank in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from paymesh.ports.notifier import Rendered, TemplateBroken

__all__ = ["JinjaTemplates"]

#: A merchant id that can name a directory: nothing that climbs out of `templates_dir`.
_DIRECTORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class JinjaTemplates:
    """Implements `paymesh.ports.notifier.Templates`."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.templates_dir = templates_dir
        self._packaged = jinja2.PackageLoader("paymesh.adapters.notify", "templates")
        self._environments: dict[str, SandboxedEnvironment] = {}

    def _environment(self, merchant_id: str) -> SandboxedEnvironment:
        own = None
        if self.templates_dir is not None and _DIRECTORY_NAME.fullmatch(merchant_id):
            own = self.templates_dir / merchant_id
        key = merchant_id if own is not None and own.is_dir() else ""
        environment = self._environments.get(key)
        if environment is None:
            loaders: list[jinja2.BaseLoader] = [self._packaged]
            if key:
                assert own is not None
                loaders.insert(0, jinja2.FileSystemLoader(own))
            environment = SandboxedEnvironment(
                loader=jinja2.ChoiceLoader(loaders),
                undefined=jinja2.StrictUndefined,
                autoescape=False,  # plain-text email and SMS, never HTML
                keep_trailing_newline=False,
                # Jinja stats a template's file before each render to see if it changed. The
                # packaged ones cannot change under a running server; a merchant's own may.
                auto_reload=bool(key),
            )
            self._environments[key] = environment
        return environment

    def render(self, merchant_id: str, name: str, facts: Mapping[str, Any]) -> Rendered:
        environment = self._environment(merchant_id)
        try:
            subject, text, sms = (
                environment.get_template(f"{name}.{part}").render(facts).strip()
                for part in ("subject", "txt", "sms")
            )
        except jinja2.TemplateError as exc:
            raise TemplateBroken(f"template {name} of {merchant_id}: {exc}") from exc
        # A header is one line: a template must not be able to add headers.
        return Rendered(subject=" ".join(subject.split()), text=text + "\n", sms=sms)
