"""The ``mlpipe`` command line.

Start-up stays cheap: this module imports only the standard library. Each command imports its
implementation when it runs, so ``--help`` and the ops commands never load ``sagemaker`` or
``stepfunctions`` (seconds of import time; only ``build``, ``deploy`` and ``export`` need them).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Sequence

TARGETS = ("stepfunctions", "sagemaker")


def _lazy(module: str, func: str = "main") -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), func)(args)

    run.__qualname__ = f"{module}.{func}"
    return run


def _config_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--config", "-c", required=required, metavar="FILE",
                   help="pipeline config (YAML or JSON)" + ("" if required else "; default: the embedded quick-start example"))


def _target_arg(p: argparse.ArgumentParser, choices: Sequence[str] = TARGETS, default: str = "stepfunctions") -> None:
    p.add_argument("--target", "-t", choices=choices, default=default, help=f"orchestrator (default: {default})")


def _output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", choices=("table", "json"), default="table",
                   help="table for people (default), json for scripts")


def _aws_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("AWS connection")
    g.add_argument("--endpoint-url", default=argparse.SUPPRESS,
                   help="send every AWS call to this URL (an AWS-compatible emulator such as moto)")
    g.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: config, then AWS_REGION)")
    g.add_argument("--profile", default=argparse.SUPPRESS, help="AWS named profile")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpipe",
        description="Define an ML retraining pipeline once; run it on AWS Step Functions, "
                    "SageMaker Pipelines, or locally.",
    )
    parser.add_argument("--endpoint-url", default=None,
                        help="send every AWS call to this URL (an AWS-compatible emulator such as moto)")
    parser.add_argument("--region", default=None, help="AWS region (default: config, then AWS_REGION)")
    parser.add_argument("--profile", default=None, help="AWS named profile")
    parser.add_argument("--verbose", action="store_true", default=False,
                        help="log the AWS SDK's requests and retries (boto3/botocore) to stderr")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str, func, aws: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if aws:
            _aws_args(p)
        return p

    # --- define and rehearse -------------------------------------------------------------
    p = add("build", "render the state machine, the SageMaker pipeline and the code assets (offline)",
            _lazy("workflows.cli.build"))
    _config_arg(p, required=True)
    _target_arg(p, choices=(*TARGETS, "all"), default="all")
    p.add_argument("--out", "-d", default="build", metavar="DIR", help="output directory (default: build)")
    p.add_argument("--force", action="store_true",
                   help="write even where --out holds files build did not write (they are kept)")

    p = add("graph", "draw the pipeline's DAG", _lazy("workflows.cli.graph"))
    _config_arg(p)
    p.add_argument("--format", "-f", choices=("mermaid", "svg", "png"), default="mermaid")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout (required for png)")

    p = add("describe", "show parameters, stages, dependencies and what is deployed",
            _lazy("workflows.cli.describe"), aws=True)
    _config_arg(p)
    p.add_argument("--target", "-t", choices=TARGETS, default=None,
                   help="also show what is deployed for this target")
    _output_arg(p)

    p = add("run", "run the pipeline locally: no AWS account, no Docker", _lazy("workflows.cli.local", "run"))
    _config_arg(p)
    p.add_argument("--input", metavar="PATH_OR_S3_URI", help="your own data instead of the example's")
    p.add_argument("--target", dest="target_column", metavar="NAME_OR_INDEX",
                   help="target column of --input (a name implies a header)")
    p.add_argument("--delimiter", metavar="C", help="field delimiter (default: detected)")
    hdr = p.add_mutually_exclusive_group()
    hdr.add_argument("--header", dest="header", action="store_true", default=None, help="the first row is a header")
    hdr.add_argument("--no-header", dest="header", action="store_false", help="there is no header row")
    p.add_argument("--categorical", nargs="+", metavar="COL", help="categorical columns (names or indices)")
    p.add_argument("--problem-type", choices=("regression", "classification"))
    p.add_argument("--gate-threshold", type=float, metavar="VALUE", help="override the quality gate's threshold")
    p.add_argument("--approval", choices=("auto", "manual"), default="auto",
                   help="manual: pause at the approval stage until `mlpipe approve RUN_ID`")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="pipeline parameter (repeatable)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a failed or paused run from where it stopped")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--exact", action="store_true",
                   help="run each stage under its image's Python and library pins (environments built once, "
                        "cached); the XGBoost training runs the container's own code")
    p.add_argument("--runs-dir", default=None, metavar="DIR", help="where runs are kept (default: ./runs)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (needs the 'tracking' extra)")
    _output_arg(p)

    p = add("runs", "list local runs, or show one as a picture: runs show RUN --format svg|png|html",
            _lazy("workflows.cli.runs", "runs"))
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("run", nargs="?", metavar="RUN", help="the run to show")
    p.add_argument("--format", "-f", choices=("svg", "png", "html"), default="html",
                   help="show: the DAG coloured by state (svg, png) or the whole report (html)")
    p.add_argument("--out", metavar="FILE", help="show: write here (default: stdout; png needs a file)")
    p.add_argument("--runs-dir", default=None, metavar="DIR")
    _output_arg(p)

    p = add("lineage", "show a run's lineage: config, code and data hashes, parameters, metrics, model",
            _lazy("workflows.cli.runs", "lineage"), aws=True)
    p.add_argument("run_id", metavar="RUN", help="a local run id, or an execution with --target")
    p.add_argument("--target", "-t", choices=TARGETS, default=None,
                   help="the run is an execution of this deployed target (default: a local run)")
    _config_arg(p)
    p.add_argument("--runs-dir", default=None, metavar="DIR")
    _output_arg(p)

    p = add("serve", "serve a model locally under the SageMaker inference contract",
            _lazy("workflows.cli.runs", "serve"))
    p.add_argument("model", metavar="MODEL_OR_RUN", help="a run id, a run directory or a model.tar.gz")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--capture", metavar="FILE", help="capture every request and response here (JSON lines, as an "
                                                     "endpoint's data capture; `mlpipe monitor --data FILE` checks them)")
    p.add_argument("--runs-dir", default=None, metavar="DIR")

    p = add("monitor", "check new data (or captured requests) against a run's Model Monitor baseline; "
                       "exit 1 when a constraint is violated", _lazy("workflows.cli.monitor"))
    p.add_argument("run", metavar="RUN_OR_MODEL",
                   help="a run id or directory, a registered model GROUP/VERSION, or a folder of baseline files")
    p.add_argument("--data", metavar="FILE", help="a CSV in the endpoint's input format, or a data-capture .jsonl "
                                                  "(default: the run's captured requests)")
    p.add_argument("--baseline", metavar="STAGE", help="the baseline stage (when the run has several)")
    mhdr = p.add_mutually_exclusive_group()
    mhdr.add_argument("--header", dest="header", action="store_true", default=None,
                      help="--data has a header row (default: as the baseline's data)")
    mhdr.add_argument("--no-header", dest="header", action="store_false", help="--data has no header row")
    p.add_argument("--out", metavar="DIR", help="where constraint_violations.json goes "
                                                "(default: RUN/monitoring/<UTC time>)")
    p.add_argument("--runs-dir", default=None, metavar="DIR")
    _output_arg(p)

    p = add("models", "manage the local model registry", _lazy("workflows.cli.runs", "models"))
    p.add_argument("action", choices=("list", "approve", "reject"))
    p.add_argument("version", nargs="?", help="model version (for approve/reject)")
    p.add_argument("--group", help="model package group (default: all)")
    p.add_argument("--reason", default="")
    p.add_argument("--runs-dir", default=None, metavar="DIR")
    _output_arg(p)

    # --- deploy and operate --------------------------------------------------------------
    p = add("deploy", "create or update everything the pipeline needs on AWS (idempotent)",
            _lazy("workflows.cli.deploy"), aws=True)
    _config_arg(p, required=True)
    _target_arg(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    p.add_argument("--assets-only", action="store_true",
                   help="only upload the code assets and the Lambda zip (for a CloudFormation deploy)")
    _output_arg(p)

    p = add("start", "start an execution", _lazy("workflows.cli.ops", "start"), aws=True)
    _config_arg(p)
    _target_arg(p)
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="pipeline parameter (repeatable)")
    p.add_argument("--name", help="execution name (default: generated)")
    p.add_argument("--wait", action="store_true", help="wait for the end; exit non-zero unless it succeeded")
    p.add_argument("--poll", type=float, default=10.0, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="give up waiting after this long")
    _output_arg(p)

    for name, help in (("status", "show an execution's status (the latest by default)"),
                       ("history", "show an execution's stage-by-stage events"),
                       ("stop", "stop an execution")):
        p = add(name, help, _lazy("workflows.cli.ops", name), aws=True)
        _config_arg(p)
        _target_arg(p)
        p.add_argument("execution", nargs="?" if name == "status" else None, metavar="EXECUTION",
                       help="execution name or ARN")
        _output_arg(p)
        if name == "status":
            p.add_argument("--format", "-f", choices=("svg", "png"), default=None,
                           help="a picture instead: the DAG coloured by each stage's state, its duration and "
                                "the gate's value")
            p.add_argument("--out", metavar="FILE",
                           help="with --format: write here (default: stdout; png needs a file)")

    p = add("list", "list recent executions", _lazy("workflows.cli.ops", "list_"), aws=True)
    _config_arg(p)
    _target_arg(p)
    p.add_argument("--max", type=int, default=20, help="at most this many (default 20)")
    _output_arg(p)

    p = add("schedule", "show, enable or disable the retraining schedule", _lazy("workflows.cli.ops", "schedule"), aws=True)
    p.add_argument("action", choices=("show", "enable", "disable"))
    _config_arg(p)
    _target_arg(p)
    _output_arg(p)

    for name, help in (("approve", "approve the model waiting in an execution (or a local run)"),
                       ("reject", "reject the model waiting in an execution (or a local run)")):
        p = add(name, help, _lazy("workflows.cli.ops", name), aws=True)
        p.add_argument("execution", metavar="EXECUTION_OR_RUN_ID")
        _config_arg(p)
        _target_arg(p)
        p.add_argument("--local", action="store_true", help="a local run id (default: detected)")
        p.add_argument("--runs-dir", default=None, metavar="DIR")
        if name == "reject":
            p.add_argument("--reason", required=True)
        _output_arg(p)

    p = add("resume", "resume a failed, stopped or timed-out execution from where it stopped (or a local run)",
            _lazy("workflows.cli.ops", "resume"), aws=True)
    p.add_argument("execution", metavar="EXECUTION_OR_RUN_ID", help="execution name or ARN, or a local run id")
    _config_arg(p)
    p.add_argument("--target", "-t", choices=TARGETS, default=None,
                   help="orchestrator (default: stepfunctions, unless EXECUTION is a local run id)")
    p.add_argument("--local", action="store_true", help="a local run id: the same as `mlpipe run --resume RUN_ID`")
    p.add_argument("--runs-dir", default=None, metavar="DIR", help="where local runs are kept (default: ./runs)")
    _output_arg(p)

    p = add("versions", "list the deployed versions: when, with which config hash, which one runs",
            _lazy("workflows.cli.ops", "versions"), aws=True)
    _config_arg(p)
    _target_arg(p)
    _output_arg(p)

    p = add("rollback", "make new runs use an earlier deployed version (until the next deploy)",
            _lazy("workflows.cli.ops", "rollback"), aws=True)
    _config_arg(p)
    _target_arg(p)
    p.add_argument("--to", metavar="VERSION", help="a version from `mlpipe versions` (default: the one deployed "
                                                   "before the live one)")
    _output_arg(p)

    p = add("iam-policy", "print every IAM policy deploy would attach", _lazy("workflows.cli.iam"))
    _config_arg(p, required=True)
    _target_arg(p, choices=(*TARGETS, "all"), default="all")
    _output_arg(p)

    p = add("export", "export the deployment as infrastructure as code", _lazy("workflows.cli.export"))
    p.add_argument("format", choices=("cloudformation",))
    _config_arg(p, required=True)
    _target_arg(p)
    p.add_argument("--out", required=True, metavar="FILE")
    return parser


class _Version(argparse.Action):
    """``--version``, read from the installed metadata only when asked (reading it costs every
    other command a few tens of milliseconds)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"mlpipe {_version()}")
        parser.exit()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("mlpipe")
    except Exception:
        return "dev"


def _sdk_logging(verbose: bool) -> None:
    """The AWS SDK's loggers: to stderr with --verbose, nowhere otherwise (never stdout, which
    carries results, whatever handlers another library put on the root logger)."""
    import logging

    handler: logging.Handler = logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("boto3", "botocore", "s3transfer", "urllib3"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.propagate = False
        log.setLevel(logging.DEBUG if verbose else logging.CRITICAL + 1)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    _sdk_logging(bool(getattr(args, "verbose", False)))
    from config.errors import UserError

    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


_VALUED = ("--endpoint-url", "--region", "--profile")  # the global options that take a value


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is neither an option nor a global
    option's value), without building the parser."""
    words = iter(argv)
    for word in words:
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _prestart(argv: Sequence[str]) -> bool:
    """For ``run`` (not its --help), start the fork server before the parser is even built:
    its imports (about a second) are what the first stage waits for."""
    if _command(argv) != "run" or {"-h", "--help"} & set(argv):
        return False
    from workflows.local.worker import Workers

    Workers().warm()
    return True


def entry() -> None:
    _prestart(sys.argv[1:])
    try:
        code = main()
    finally:  # also when the parser refuses the arguments (SystemExit)
        worker = sys.modules.get("workflows.local.worker")
        if worker is not None:  # a run keeps its fork server warm for the next; this process ends here
            worker.stop_servers()
    # Skip interpreter teardown: with sagemaker, moto or pandas loaded it costs up to a second,
    # and every file mlpipe writes is already closed (atomic renames); only the streams remain.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
