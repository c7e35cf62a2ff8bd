"""Request ids and structured (JSON) logs.

`RequestIdMiddleware` gives every request an id — the caller's `X-Request-ID`
when it is a sane token, else a new one — sets `request.id`, echoes it in the
response's `X-Request-ID` header and makes it visible to every log record emitted
while the request is handled (a context variable, so threads and async tasks
each see their own). `JsonFormatter` writes one JSON object per line with that id.
"""

from __future__ import annotations

import contextvars
import logging
import re
import traceback
import uuid
from datetime import UTC, datetime

import orjson

REQUEST_ID_HEADER = "X-Request-ID"
# A caller-supplied id is logged and echoed: accept only a short token, so a
# header cannot inject log lines, markup or megabytes.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def request_id_get() -> str:
    """The id of the request being handled, or "" outside a request."""
    return request_id_var.get()


class RequestIdMiddleware:
    """Put it first in MIDDLEWARE, so the id covers every other middleware's logs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` (for plain-text formats such as `%(request_id)s`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


# LogRecord attributes that are not "extra" fields passed by the caller.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info))
        if record.stack_info:
            entry["stack"] = record.stack_info
        # default=str: an extra that is not JSON (a request, a model) must not lose the line.
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
