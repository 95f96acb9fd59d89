"""Checks of single values, from AWS's own rules: instance types per API, name patterns and
lengths, numeric ranges, S3 bucket names, cron fields and time zones.

The limits come from the API models botocore ships (through ``config.aws_api``, loaded only
when a check needs them), so they follow AWS as botocore updates. ``config.models`` applies
them to the fields of a config.
"""

from __future__ import annotations

import re
from typing import Annotated, Union

from pydantic import AfterValidator

from config import aws_api, suggest


class FieldError(ValueError):
    """A validation error that knows where it is and how to fix it.

    ``loc`` is relative to what the raising validator validates (a model validator of a stage
    says ("hyperparameters", "max_dept")); the loader appends it to pydantic's location and
    shows ``fix`` as the fix.
    """

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = (), fix: str | None = None) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.fix = fix


# --- scalar validators ---------------------------------------------------------------------

_S3_URI = re.compile(r"^s3://(?P<bucket>[^/]*)(/(?P<key>.*))?$", re.S)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
_PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_SSM_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]{1,1010}$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")

# S3 bucket naming rules (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 bucket name, or None."""
    if not 3 <= len(name) <= 63:
        return f"is {len(name)} characters long; bucket names have 3-63"
    bad = sorted({c for c in name if not (c.islower() and c.isascii() or c.isdigit() and c.isascii() or c in ".-")})
    if bad:
        return f"contains {', '.join(map(repr, bad))}; bucket names use lowercase letters, digits, '.' and '-' only"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "must begin and end with a lowercase letter or digit"
    if ".." in name:
        return "has two adjacent periods"
    if _IPV4.match(name):
        return "is formatted as an IP address"
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"starts with the reserved prefix {prefix!r}"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"ends with the reserved suffix {suffix!r}"
    return None


def _bucket_fix(name: str) -> str:
    guess = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip(".-")
    guess = re.sub(r"\.{2,}", ".", guess)[:63]
    return f"use a valid bucket name, e.g. {guess!r}" if guess and not bucket_problem(guess) \
        else "choose a bucket name of 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"


def s3_uri(value: str) -> str:
    m = _S3_URI.match(value)
    if not m:
        raise FieldError(f"{value!r} is not an S3 URI; expected s3://<bucket>/<key>",
                         fix="write it as s3://<bucket>/<key>")
    problem = bucket_problem(m["bucket"])
    if problem:
        raise FieldError(f"{value!r} is not a valid S3 URI: bucket {m['bucket']!r} {problem}",
                         fix=_bucket_fix(m["bucket"]))
    limit = aws_api.string_constraints("sagemaker", "S3Uri").max_length
    if limit is not None and len(value) > limit:
        raise FieldError(f"{value!r} is {len(value)} characters long; SageMaker accepts S3 URIs of at most {limit}",
                         fix="use a shorter prefix or key")
    return value


def role_arn(value: str) -> str:
    if not _ROLE_ARN.match(value):
        raise ValueError(
            f"{value!r} is not an IAM role ARN; expected arn:aws:iam::<12-digit account>:role/<name>"
        )
    return value


# Which SageMaker API (and so which botocore enum) an instance type is sent to.
_ALL_APIS = tuple(aws_api.INSTANCE_TYPE_SHAPES)


def instance_type(value: str, apis: tuple[str, ...] = _ALL_APIS, label: str = "SageMaker") -> str:
    """``value`` if one of ``apis`` accepts it (their botocore enums), else a FieldError whose
    fix names the closest valid types."""
    allowed = sorted(set().union(*(aws_api.instance_types(api) for api in apis)))
    if value in allowed:
        return value
    shapes = " or ".join(aws_api.INSTANCE_TYPE_SHAPES[api] for api in apis)
    elsewhere = [api for api in _ALL_APIS if value in aws_api.instance_types(api)]
    if elsewhere:
        message = (f"{value!r} is not a {label} instance type (not in botocore's {shapes}); "
                   f"it is valid only for {', '.join(elsewhere)}")
    else:
        message = f"{value!r} is not a known SageMaker instance type (not in botocore's {shapes})"
    near = suggest.closest_instance_types(value, allowed)
    raise FieldError(message, fix=f"valid {label} instance types include {', '.join(near)}, ...")


def _instance_type_for(label: str, *apis: str) -> AfterValidator:
    return AfterValidator(lambda v: instance_type(v, apis, label))


def api_string(value: str, service: str, operation: str, member: str, what: str) -> str:
    """``value`` if AWS accepts it as ``member`` of ``operation`` (length and pattern, from
    botocore's model); else a FieldError with a corrected suggestion."""
    shape = aws_api.member_shape(service, operation, member)
    enum = aws_api.enum_values(service, shape)
    if enum:
        if value not in enum:
            near = suggest.closest(value, enum, 3)
            raise FieldError(f"{value!r} is not a {what}; {service} {operation} accepts {', '.join(enum)}",
                             fix=f"did you mean {near[0]!r}? (values are case-sensitive)")
        return value
    problem = aws_api.string_constraints(service, shape).problem(value)
    if problem:
        guess = re.sub(r"[^A-Za-z0-9-]+", "-", value).strip("-")
        guess = re.sub(r"-{2,}", "-", guess)
        ok = guess and not aws_api.string_constraints(service, shape).problem(guess)
        raise FieldError(f"{value!r} is not a valid {what}: it {problem} (botocore: {service} {operation} {member})",
                         fix=f"use letters, digits and hyphens, e.g. {guess!r}" if ok
                         else "use a name that matches the pattern")
    return value


# The request member each stage kind's instance_count is sent as.
_COUNT_MEMBERS = {
    "processing": ("sagemaker", "CreateProcessingJob", "ProcessingResources.ClusterConfig.InstanceCount"),
    "evaluation": ("sagemaker", "CreateProcessingJob", "ProcessingResources.ClusterConfig.InstanceCount"),
    "baseline": ("sagemaker", "CreateProcessingJob", "ProcessingResources.ClusterConfig.InstanceCount"),
    "training": ("sagemaker", "CreateTrainingJob", "ResourceConfig.InstanceCount"),
    "transform": ("sagemaker", "CreateTransformJob", "TransformResources.InstanceCount"),
    "endpoint": ("sagemaker", "CreateEndpointConfig", "ProductionVariants.InitialInstanceCount"),
}


def count_range(kind: str) -> tuple[int, int | None] | None:
    """(min, max) instance count of a stage kind, from botocore; at least 1 (a job with no
    instances runs nothing). None for kinds that send no count."""
    member = _COUNT_MEMBERS.get(kind)
    if member is None:
        return None
    service, operation, path = member
    low, high = aws_api.numeric_range(service, aws_api.member_shape(service, operation, path))
    return max(1, low or 0), high


def check_count(value: int, kind: str, what: str = "instance_count") -> None:
    limits = count_range(kind)
    if limits is None:
        return
    low, high = limits
    service, operation, path = _COUNT_MEMBERS[kind]
    where = f"{operation} {path}"
    if value < low:
        raise FieldError(f"{what} {value} is below the minimum {low} ({where})",
                         fix=f"use {low} or more" + (f" (at most {high})" if high else ""))
    if high is not None and value > high:
        raise FieldError(f"{what} {value} is above the maximum {high} ({where}, from botocore)",
                         fix=f"use {low} to {high}")


_CRON = re.compile(r"^cron\((\S+\s+){5}\S+\)$")
_RATE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$")
_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
_DAYS = {d: i + 1 for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
# EventBridge Scheduler cron fields: name, range, names, what else the field allows.
_CRON_FIELDS = (
    ("minutes", 0, 59, {}, ""),
    ("hours", 0, 23, {}, ""),
    ("day-of-month", 1, 31, {}, "?LW"),
    ("month", 1, 12, _MONTHS, ""),
    ("day-of-week", 1, 7, _DAYS, "?L#"),
    ("year", 1970, 2199, {}, ""),
)
_CRON_HELP = ("cron(minutes hours day-of-month month day-of-week year): minutes 0-59, hours 0-23, "
              "day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 1-7 or SUN-SAT, year 1970-2199, "
              "e.g. cron(0 3 ? * MON *)")


def _cron_number(token: str, field: tuple) -> int:
    name, low, high, names, _ = field
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise ValueError(f"the {name} field has {token!r}, which is not "
                         + ("a number or a name" if names else "a number"))
    value = int(token)
    if not low <= value <= high:
        raise ValueError(f"the {name} field is {value}; it must be {low}-{high}")
    return value


def _cron_field(text: str, field: tuple) -> None:
    name, low, high, names, special = field
    if text == "?":
        if "?" not in special:
            raise ValueError(f"the {name} field cannot be '?'")
        return
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"the {name} field has the step {step!r}; it must be a positive number")
        if base == "*":
            continue
        if "L" in special and base.upper() == "L":
            continue
        if name == "day-of-month" and base.upper() in ("LW",):
            continue
        if name == "day-of-month" and base.upper().endswith("W") and len(base) > 1:
            _cron_number(base[:-1], field)
            continue
        if name == "day-of-week" and "#" in base:
            day, _, nth = base.partition("#")
            _cron_number(day, field)
            if not (nth.isdigit() and 1 <= int(nth) <= 5):
                raise ValueError(f"the {name} field has {base!r}; the number after '#' must be 1-5")
            continue
        if name == "day-of-week" and base.upper().endswith("L") and len(base) > 1:
            _cron_number(base[:-1], field)
            continue
        start, dash, end = base.partition("-")
        _cron_number(start, field)
        if dash:
            _cron_number(end, field)


def schedule_expression(value: str) -> str:
    if _RATE.match(value):
        return value
    if _CRON.match(value):
        fields = value[5:-1].split()
        dom, dow = fields[2], fields[4]
        if (dom == "?") == (dow == "?"):
            raise FieldError(
                f"{value!r}: EventBridge cron needs '?' in exactly one of day-of-month and day-of-week",
                fix="e.g. cron(0 3 ? * MON *) (weekly) or cron(0 3 1 * ? *) (monthly)")
        for text, field in zip(fields, _CRON_FIELDS):
            try:
                _cron_field(text, field)
            except ValueError as exc:
                raise FieldError(f"{value!r}: {exc}", fix=_CRON_HELP) from None
        limit = aws_api.string_constraints(
            "scheduler", aws_api.member_shape("scheduler", "CreateSchedule", "ScheduleExpression")).max_length
        if limit is not None and len(value) > limit:
            raise FieldError(f"{value!r} is longer than {limit} characters", fix="shorten the expression")
        return value
    raise FieldError(
        f"{value!r} is not a schedule expression; expected cron(min hour dom month dow year) "
        "with six fields, or rate(N unit) such as rate(7 days)",
        fix="e.g. cron(0 3 ? * MON *) or rate(7 days)")


_TIMEZONES: set[str] | None = None


def time_zone(value: str) -> str:
    """An IANA time zone name (the tz database Python's zoneinfo sees)."""
    global _TIMEZONES
    if value == "UTC":
        return value
    if _TIMEZONES is None:
        import zoneinfo

        _TIMEZONES = set(zoneinfo.available_timezones())
    if _TIMEZONES and value not in _TIMEZONES:  # no tz database on this machine: cannot tell
        import difflib

        near = difflib.get_close_matches(value, sorted(_TIMEZONES), n=3, cutoff=0.6)
        raise FieldError(f"{value!r} is not an IANA time zone (zoneinfo's tz database)",
                         fix=(f"did you mean {' or '.join(near)}? " if near else "")
                         + "use an IANA name such as UTC, Europe/Paris or America/New_York")
    return value


S3Uri = Annotated[str, AfterValidator(s3_uri)]
RoleArn = Annotated[str, AfterValidator(role_arn)]
InstanceType = Annotated[str, AfterValidator(instance_type)]  # any SageMaker API
TrainingInstanceType = Annotated[str, _instance_type_for("training", "training")]
ProcessingInstanceType = Annotated[str, _instance_type_for("processing", "processing")]
TransformInstanceType = Annotated[str, _instance_type_for("transform", "transform")]
EndpointInstanceType = Annotated[str, _instance_type_for("endpoint", "endpoint")]
InferenceInstanceType = Annotated[str, _instance_type_for("inference", "endpoint", "transform")]
ScheduleExpression = Annotated[str, AfterValidator(schedule_expression)]
TimeZone = Annotated[str, AfterValidator(time_zone)]
Scalar = Union[bool, int, float, str]

# A value that is either literal or a pipeline parameter written as "$Name".
ParamOr = Union[int, str]
_REFERENCE = re.compile(r"^(\$[A-Za-z][A-Za-z0-9]*|[a-z][a-z0-9-]*\.[a-z_]+)$")


def is_reference(value: object) -> bool:
    """True for "$Param" or "stage.output" strings; literals such as S3 URIs are not references."""
    return isinstance(value, str) and bool(_REFERENCE.match(value)) and not value.startswith("s3:")
