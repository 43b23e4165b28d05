"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with a status that says
whose fault it was (400 bad request, 404 unknown model or route, 413 body too large, 429 queue full,
500/503 server side)."""

from __future__ import annotations

import contextlib

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from .protocol import FIELD_NAMES
from .scheduler import EngineStopped, QueueFull, ShuttingDown


class APIError(Exception):
    """An error to return to the client in OpenAI's shape.

    Examples
    --------
    >>> e = APIError(400, "messages must not be empty", param="messages")
    >>> e.body()["error"]["type"]
    'invalid_request_error'
    """

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


_TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean",
               "list": "an array", "dict": "an object", "model": "an object"}


def validation_error(exc: ValidationError) -> APIError:
    """Turn pydantic's first complaint into one readable OpenAI-style error."""
    err = exc.errors(include_url=False)[0]
    kind = err.get("type", "")
    # keep field names and list indices; drop the union-branch tags pydantic adds ('str', 'list[int]'...)
    loc = [str(p) for p in err.get("loc", ()) if isinstance(p, int) or p in FIELD_NAMES]
    param = ".".join(loc) or None
    if kind == "json_invalid":
        return APIError(400, "We could not parse the JSON body of your request: "
                        f"{err.get('ctx', {}).get('error', 'invalid JSON')}. Send a JSON object, e.g. "
                        '{"model": "...", "messages": [{"role": "user", "content": "Hi"}]}.',
                        code="invalid_json")
    if kind == "missing":
        return APIError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if kind in ("model_type", "model_attributes_type", "dict_type") and not loc:
        return APIError(400, "The request body must be a JSON object.", code="invalid_type")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = next((v for k, v in _TYPE_NAMES.items() if kind.startswith(k)), kind.replace("_type", ""))
        got = type(err.get("input")).__name__
        return APIError(400, f"Invalid type for '{param}': expected {expected}, but got {got} "
                        f"({err.get('input')!r:.60}) instead.", param=param, code="invalid_type")
    return APIError(400, f"Invalid value for '{param}': {err.get('msg', 'invalid')}.", param=param,
                    code="invalid_value")


def engine_error(exc: Exception) -> APIError:
    if isinstance(exc, ShuttingDown):  # retryable: nothing is wrong with the request
        text = str(exc).rstrip(".")
        return APIError(503, f"{text[:1].upper()}{text[1:]}.", type="server_error",
                        code="server_shutting_down", headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, EngineStopped):
        return APIError(503, str(exc), type="server_error", code="engine_stopped")
    return APIError(500, f"Generation failed ({type(exc).__name__}: {exc}). The server is still running.",
                    type="server_error")


@contextlib.contextmanager
def admission_errors():
    """A full queue is a 429 with ``Retry-After``; a stopped engine is a 503."""
    try:
        yield
    except QueueFull as exc:
        raise APIError(429, str(exc), type="rate_limit_error", code="rate_limit_exceeded",
                       headers={"Retry-After": str(exc.retry_after)}) from None
    except EngineStopped as exc:
        raise engine_error(exc) from None
