"""One place that makes boto3 clients and turns botocore failures into ``UserError``.

Precedence: ``--endpoint-url`` (else boto3's own ``AWS_ENDPOINT_URL``), ``--region`` (else the
config's region, else ``AWS_REGION``/the profile), ``--profile``. boto3 is imported on first
use, so ``mlpipe --help`` never pays for it.

Tests inject clients: every command accepts a ``clients`` factory ``(service) -> client``.
"""

from __future__ import annotations

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
                self._session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            if not self._session.region_name:
                raise UserError("no AWS region is set", fix="pass --region, set aws.region in the config, "
                                                          "or export AWS_REGION")
            kwargs: dict[str, Any] = {"config": self._config}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            return self._session.client(service, **kwargs)

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


def from_args(args: Any, config_region: str | None = None, clients: ClientFactory | None = None) -> Aws:
    """The Aws for a parsed command line (global options may sit before or after the command)."""
    region = getattr(args, "region", None) or config_region or os.environ.get("AWS_REGION") \
        or os.environ.get("AWS_DEFAULT_REGION")
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
