"""Addressing a deployed pipeline from its config, lightly: the ops commands read only the
few fields they need (pipeline name, region, account) without validating the whole config, so
a typo elsewhere never blocks ``status`` or ``stop``, and neither SDK is ever imported."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from config.errors import UserError
from config.loader import DEFAULT_CONFIG
from steps import naming
from workflows.aws.session import Aws, aws_errors, from_args, is_not_found


DEFAULT_TARGET = "stepfunctions"  # what --target defaults to for the ops commands


def command(verb: str, *words: str, config: str | None = None, target: str | None = None) -> str:
    """A command line a person can paste: ``mlpipe VERB WORDS --config PATH``, with ``--target T``
    unless T is the default. Every hint naming an ops command is built here, so none leaves out
    the config or the target it needs."""
    import shlex

    parts = ["mlpipe", verb, *words]
    if config:
        parts += ["--config", str(config)]
    if target and target != DEFAULT_TARGET:
        parts += ["--target", target]
    return " ".join(shlex.quote(p) for p in parts)


@dataclass
class Target:
    """What the ops commands need to address a deployed pipeline."""

    name: str                 # pipeline name from the config
    target: str               # stepfunctions | sagemaker
    region: str
    config_account: str | None
    aws: Aws
    source: str
    _account: str | None = None

    @property
    def account(self) -> str:
        if self._account is None:
            self._account = self.config_account or self.aws.account_id()
        return self._account

    def real_account(self) -> bool:
        """Switch to the caller's account if the config's differs; True if it changed."""
        real = self.aws.account_id()
        changed = real != self._account
        self._account = real
        return changed

    def command(self, verb: str, *words: str) -> str:
        """``mlpipe VERB WORDS`` for this pipeline and target, ready to paste (see ``command``)."""
        return command(verb, *words, config=self.source, target=self.target)

    @property
    def arns(self) -> naming.Arns:
        return naming.Arns(self.name, self.account, self.region)

    @property
    def resource(self) -> str:
        return naming.orchestrator_name(self.name, self.target)

    def nothing_deployed(self) -> UserError:
        what = "state machine" if self.target == "stepfunctions" else "SageMaker pipeline"
        return UserError(f"nothing deployed yet: {what} {self.resource} does not exist in {self.region}",
                         source=self.source,
                         fix=f"run `{self.command('deploy')}` first "
                             "(or check --region / --target)")

    def unknown_execution(self, execution: str) -> UserError:
        return UserError(f"execution {execution!r} not found for {self.resource}", source=self.source,
                         fix=f"list executions with `{self.command('list')}`")

    def call(self, doing: str, fn: Callable[[], Any], on_not_found: Callable[[Exception], Any] | None = None):
        """Run an AWS call; on not-found try the caller's real account once (the config may
        name another account than deploy used), then ``on_not_found``."""
        with aws_errors(doing):
            try:
                return fn()
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                if self.config_account and self.real_account():
                    try:
                        return fn()
                    except Exception as exc2:
                        if not is_not_found(exc2):
                            raise
                        exc = exc2
                if on_not_found is not None:
                    return on_not_found(exc)
                raise


def read_light(path: str | None) -> tuple[dict[str, Any], str]:
    """The config document without full validation."""
    from config.loader import read_document

    p = Path(path) if path else DEFAULT_CONFIG
    doc = read_document(p)
    if not isinstance(doc.get("pipeline"), dict) or "name" not in doc["pipeline"]:
        raise UserError("no pipeline.name in the config", source=str(p), field="pipeline.name",
                        fix="see config/examples/ for a valid config")
    return doc, str(p)


def target_of(args: argparse.Namespace, clients=None) -> Target:
    from config.loader import apply_overrides

    doc, source = read_light(getattr(args, "config", None))
    aws_doc = apply_overrides(doc, os.environ).get("aws") or {}
    region = aws_doc.get("region")
    account = aws_doc.get("account_id")
    aws = from_args(args, region, clients)
    region = aws.region or aws.region_name
    return Target(name=str(doc["pipeline"]["name"]), target=getattr(args, "target", None) or DEFAULT_TARGET,
                  region=region, config_account=str(account) if account else None, aws=aws, source=source)
