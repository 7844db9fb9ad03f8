"""Business refusals the schemathesis runs in .ci/schemathesis accept.

A refusal is accepted only as a failure of `positive_data_acceptance` (ST202, "schema-valid
request rejected") and only when the server answered with the exact code listed here: each is
a rule JSON Schema cannot state, so a schema-valid request can meet it. Anything else fails.
"""

import json
import re

import schemathesis

# POST /api/v1/coupon-issues depends on state, not on the body's shape: CP05 when the user
# already holds the coupon (the fuzzer repeats ids), CP02 a disabled coupon, CP03 outside the
# coupon's issuing period (the demo seeds past and future coupons), CP04 sold out.
ISSUE_REFUSALS = {"CP02", "CP03", "CP04", "CP05"}

# POST /api/v1/admin/coupons: endAt must be after startAt, a rule between two fields.
END_BEFORE_START = ("endAt", "종료일은 시작일보다 이후여야 합니다.")

# POST /api/v1/auth/signup: at most 72 bytes of UTF-8 (bcrypt's limit); JSON Schema's
# maxLength counts characters, so a 72-character password of Hangul passes the schema.
PASSWORD_TOO_LONG = ("password", "비밀번호는 72바이트(UTF-8) 이하여야 합니다.")

# Integer path parameters: JSON Schema counts 89.0 as an integer, so the fuzzer may render an
# id as "89.0"; the original (Spring, a Long path variable) and we refuse it with 400 C002.
INTEGRAL_DECIMAL = re.compile(r"-?[0-9]+\.0+")


def _refusal(response):
    """Returns the envelope's code and its (field, reason) pairs, or None for another body."""
    try:
        body = json.loads(response.content)
    except (ValueError, TypeError):
        return None
    if not isinstance(body, dict):
        return None
    errors = {(e.get("field"), e.get("reason")) for e in body.get("errors") or []}
    return body.get("code"), errors


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keeps every failure except the documented business refusals above."""
    if failure.code != "ST202":
        return True
    refusal = _refusal(response)
    if refusal is None:
        return True
    code, errors = refusal
    path = case.operation.path
    if path == "/api/v1/coupon-issues" and code in ISSUE_REFUSALS:
        return False
    if path == "/api/v1/admin/coupons" and code == "C001" and errors == {END_BEFORE_START}:
        return False
    if path == "/api/v1/auth/signup" and code == "C001" and errors == {PASSWORD_TOO_LONG}:
        return False
    if code == "C002" and errors and _only_integral_decimals(case, errors):
        return False
    return True


def _only_integral_decimals(case, errors):
    """True when every refused field is a path parameter written as an integral decimal."""
    params = case.path_parameters or {}
    for field, _reason in errors:
        value = params.get(field)
        if value is None or not INTEGRAL_DECIMAL.fullmatch(str(value)):
            return False
    return True
