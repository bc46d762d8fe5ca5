"""Errors the simulated API server returns, with the HTTP status a real one would use.

Each error carries a `reason` (the `metav1.StatusReason` string), the HTTP `code`
and a message in the form kube-apiserver uses, so that components can react to
them exactly as real clients do (for example, retry on 409 Conflict).
"""

from __future__ import annotations

from dataclasses import dataclass


class APIError(Exception):
    """Base of every error returned by `sim.api.server.APIServer`."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(APIError):
    """The object does not exist (HTTP 404)."""

    code = 404
    reason = "NotFound"


class AlreadyExists(APIError):
    """An object with this name already exists (HTTP 409)."""

    code = 409
    reason = "AlreadyExists"


class Conflict(APIError):
    """A stale resourceVersion, or a write that conflicts with the stored state (HTTP 409)."""

    code = 409
    reason = "Conflict"


class BadRequest(APIError):
    """The request itself is malformed, e.g. an unparsable patch or selector (HTTP 400)."""

    code = 400
    reason = "BadRequest"


class Gone(APIError):
    """The requested resourceVersion is older than the watch history kept (HTTP 410)."""

    code = 410
    reason = "Expired"


@dataclass(frozen=True)
class FieldError:
    """One validation failure: the field path, the offending value and the rule broken.

    `kind` is the Kubernetes field-error type: "Required", "Invalid",
    "Duplicate", "TooMany", "TooLong", "NotSupported" or "Forbidden".
    """

    path: str
    kind: str
    detail: str
    value: object = None

    def __str__(self) -> str:
        if self.kind == "Required":
            return (
                f"{self.path}: Required value: {self.detail}"
                if self.detail
                else (f"{self.path}: Required value")
            )
        if self.kind == "Forbidden":
            return f"{self.path}: Forbidden: {self.detail}"
        if self.kind == "TooMany":
            return f"{self.path}: Too many: {self.value}: {self.detail}"
        if self.kind == "TooLong":
            return f"{self.path}: Too long: {self.detail}"
        if self.kind == "Duplicate":
            return f"{self.path}: Duplicate value: {self.value!r}"
        if self.kind == "NotSupported":
            return f"{self.path}: Unsupported value: {self.value!r}: {self.detail}"
        return f"{self.path}: Invalid value: {self.value!r}: {self.detail}"


class Invalid(APIError):
    """The object breaks validation rules (HTTP 422); `errors` lists every broken rule."""

    code = 422
    reason = "Invalid"

    def __init__(self, kind: str, name: str, errors: list[FieldError]) -> None:
        details = ", ".join(str(e) for e in errors)
        super().__init__(f'{kind} "{name}" is invalid: [{details}]')
        self.kind = kind
        self.name = name
        self.errors = errors
