"""One place that makes boto3 clients and turns botocore failures into ``UserError``.

Precedence: ``--endpoint-url`` (else boto3's own ``AWS_ENDPOINT_URL``), ``--region`` (else the
config's region, else ``AWS_REGION``/the profile), ``--profile``. boto3 is imported on first
use, so ``mlpipe --help`` never pays for it.

Tests inject clients: every command accepts a ``clients`` factory ``(service) -> client``.
"""

from __future__ import annotations

import functools
import json
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from config.errors import UserError

# --- comparison helpers shared by the client modules (no AWS calls) ---
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def as_json(value: Any) -> Any:
    """A policy/pattern/definition as a comparable object (strings are parsed)."""
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError:
            from urllib.parse import unquote

            try:
                return json.loads(unquote(value))
            except ValueError:
                return value  # a plain string (an expression, a name)
    return value


def same_json(a: Any, b: Any) -> bool:
    return _norm(as_json(a)) == _norm(as_json(b))


def _norm(v: Any) -> Any:
    """IAM returns single-element lists as scalars and vice versa; compare them alike."""
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, list):
        items = [_norm(x) for x in v]
        return items[0] if len(items) == 1 else items
    return v


def tag_list(tags: dict[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


ClientFactory = Callable[[str], Any]

# Error codes that mean "the thing you named does not exist".
NOT_FOUND_CODES = frozenset({
    "ResourceNotFound", "ResourceNotFoundException", "StateMachineDoesNotExist", "ExecutionDoesNotExist",
    "NoSuchEntity", "NoSuchBucket", "NoSuchKey", "404", "NotFound", "NotFoundException",
    "NoSuchEntityException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
    "ResourceNotFoundFault",
})


# Error codes that mean "someone else is creating or changing this right now" (another deploy):
# deploy re-reads the resource and tries again (a create that lost the race becomes an update).
RACE_CODES = frozenset({
    "ResourceConflictException", "ConcurrentModificationException", "ConcurrentModification",
    "ConflictException", "EntityAlreadyExists", "EntityAlreadyExistsException", "ResourceAlreadyExistsException",
    "AlreadyExistsException", "ResourceInUse", "ResourceInUseException", "StateMachineAlreadyExists",
    "BucketAlreadyOwnedByYou", "OperationAbortedException", "QueueAlreadyExists", "QueueNameExists",
    "QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently", "TooManyUpdates",
})


def is_race(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in RACE_CODES:
        return True
    text = str(exc).lower()
    return code in {"ValidationException", "InvalidParameterException", "InvalidParameterValueException"} and (
        "already exist" in text or "update is in progress" in text or "is in progress" in text)


class Aws:
    """Lazily created, cached clients for one (endpoint, region, profile)."""

    def __init__(self, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
                 clients: ClientFactory | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.profile = profile
        self._factory = clients
        self._cache: dict[str, Any] = {}
        self._session = None
        self._account: str | None = None

    def client(self, service: str) -> Any:
        if service not in self._cache:
            if self._factory is not None:
                self._cache[service] = self._factory(service)
            else:
                self._cache[service] = self._make(service)
        return self._cache[service]

    def _make(self, service: str) -> Any:
        with aws_errors(f"creating a {service} client"):
            if self._session is None:
                import boto3
                from botocore.config import Config

                self._config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                                      read_timeout=60)
                session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
                if not session.region_name:
                    raise UserError("no AWS region is set", fix="pass --region, set aws.region in the config, "
                                                              "or export AWS_REGION")
                check_region(session)
                self._session = session
            kwargs: dict[str, Any] = {"config": self._config}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            client = self._session.client(service, **kwargs)
            client.meta.events.register("before-parse", functools.partial(_refuse_non_aws_answers,
                                                                          client.meta.endpoint_url))
            return client

    @property
    def region_name(self) -> str:
        if self._factory is not None and self.region:
            return self.region
        return self.client("sts").meta.region_name

    def account_id(self) -> str:
        if self._account is None:
            with aws_errors("reading the caller identity (sts:GetCallerIdentity)"):
                self._account = self.client("sts").get_caller_identity()["Account"]
        return self._account


def check_region(session: Any) -> None:
    """An unknown region (``--region us-east-7``) is one clear error, not a DNS failure later."""
    region = session.region_name
    known: set[str] = set()
    for partition in session.get_available_partitions():
        known |= set(session.get_available_regions("sts", partition))
    if known and region not in known:
        raise _unknown_region(region, known)


def check_region_name(region: str) -> None:
    """``check_region`` before any session exists (botocore's endpoint data, cached by
    ``config.aws_api``): for a command that checks ``--region`` before it writes anything."""
    from config import aws_api

    known = set(aws_api.regions("sts"))
    if known and region not in known:
        raise _unknown_region(region, known)


def _unknown_region(region: str, known: set[str]) -> UserError:
    from config.suggest import closest

    near = closest(region, sorted(known), 4)
    return UserError(f"{region!r} is not an AWS region (botocore's endpoint data)", field="region",
                     fix=f"use one of {', '.join(near)}, ... in --region, the config or AWS_REGION "
                         "(if the region is new, upgrade botocore)")


class NotAws(UserError):
    """The endpoint answered, but not as an AWS API does (a web page, a proxy's login page)."""


def _refuse_non_aws_answers(endpoint: str, operation_model: Any = None, response_dict: Any = None,
                            **_: Any) -> None:
    """botocore ``before-parse`` hook: an HTML page or, from a JSON-protocol API, a body that is
    not JSON, means the endpoint is not AWS (botocore would fail on it with a KeyError, or parse
    it into an empty answer)."""
    if operation_model is None or not response_dict or operation_model.has_streaming_output:
        return
    body = response_dict.get("body")
    if not isinstance(body, (bytes, bytearray)) or not body.strip():
        return
    head = bytes(body).lstrip()[:15].lower()
    html = head.startswith(b"<!doctype html") or head.startswith(b"<html")
    service = operation_model.service_model
    protocol = getattr(service, "resolved_protocol", None) or service.metadata.get("protocol", "")
    not_json = False
    if protocol == "json" and not html:
        try:
            json.loads(body)
        except ValueError:
            not_json = True
    if html or not_json:
        what = f"HTTP {response_dict.get('status_code')}, " + ("an HTML page" if html else "a body that is not JSON")
        raise NotAws(_not_aws_message(endpoint, operation_model.name, what), fix=NOT_AWS_FIX)


NOT_AWS_FIX = "check --endpoint-url / AWS_ENDPOINT_URL (and any proxy): it must be AWS or an AWS-compatible emulator"


def _not_aws_message(url: str, operation: str, what: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    where = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the endpoint"
    return f"{where} answered {operation}, but not as AWS does ({what})"


def resolve_region(*given: str | None) -> str | None:
    """The region to use: the first of ``given`` that is set (``--region``, the config's
    region), else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``; None leaves it to the profile."""
    return next((r for r in given if r), None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def from_args(args: Any, config_region: str | None = None, clients: ClientFactory | None = None) -> Aws:
    """The Aws for a parsed command line (global options may sit before or after the command)."""
    region = resolve_region(getattr(args, "region", None), config_region)
    return Aws(endpoint_url=getattr(args, "endpoint_url", None), region=region,
               profile=getattr(args, "profile", None), clients=clients or getattr(args, "clients", None))


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return True
    if code == "ValidationException":
        text = str(exc).lower()
        return any(s in text for s in ("does not exist", "not found", "could not find", "cannot find"))
    return False


def or_none(call: Callable[..., Any], **kwargs: Any) -> Any:
    """``call(**kwargs)``, or None when AWS answers that the thing does not exist."""
    try:
        return call(**kwargs)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def translate(exc: BaseException, doing: str) -> UserError | None:
    """A UserError for failures a person can fix; None for everything else (a real bug/outage)."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return UserError(f"no AWS credentials found while {doing}",
                         fix="run `aws configure` or `aws sso login`, pass --profile, or export "
                             "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, bx.ProfileNotFound):
        return UserError(str(exc), fix="check --profile / AWS_PROFILE against ~/.aws/config")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError)):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return UserError(f"cannot reach the AWS endpoint {url} while {doing}".replace("  ", " "),
                         fix="check --endpoint-url / AWS_ENDPOINT_URL, the network and the region")
    if type(exc).__name__ == "ResponseParserError":   # botocore.parsers: the answer is not AWS's format
        return UserError(f"the AWS endpoint answered while {doing}, but not as AWS does: "
                         f"{str(exc).splitlines()[0][:160]}", fix=NOT_AWS_FIX)
    if isinstance(exc, bx.NoRegionError):
        return UserError("no AWS region is set", fix="pass --region, set aws.region in the config, or export AWS_REGION")
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if is_not_found(exc):
            return UserError(f"not found while {doing}: {message}", fix="check the name; run `mlpipe deploy` first "
                                                                         "if nothing is deployed yet")
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
                    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch"}:
            return UserError(f"AWS refused {doing}: {code}: {message}",
                             fix="check your credentials and their IAM permissions (see `mlpipe iam-policy`)")
        if code == "ExecutionAlreadyExists":
            return UserError(f"an execution with this name already exists, with other input, while {doing}",
                             fix="choose another --name (a name is unique per state machine for 90 days), "
                                 "or leave --name out to get a fresh one")
        if is_race(exc):
            return UserError(f"another change to the same resource was under way while {doing}: {code}: {message}",
                             fix="another mlpipe deploy (or someone else) is changing this pipeline; wait for it, "
                                 "then run the command again")
        if code in {"500", "NotImplemented", "InternalFailure", "NotImplementedException"}:
            return UserError(f"the AWS endpoint failed while {doing} ({code})",
                             fix="retry later; an emulator given with --endpoint-url may not implement this call")
    return None


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Re-raise botocore failures a person can fix as UserError (exit 2, no traceback)."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        err = translate(exc, doing)
        if err is None:
            raise
        raise err from None
