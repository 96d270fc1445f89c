"""Every error NextStat Pro raises on purpose.

    NSPError                      root: a readable one-line message, an exit code, an HTTP status
    ├── UsageError                bad argument or option (exit 2, HTTP 400)
    │   ├── ParamError            malformed or unknown --param
    │   ├── UnknownTaskError
    │   ├── FieldError            a request field missing or out of range, naming the fields
    │   └── TextError             text people read with a refused character or too long (``text``)
    ├── InputError                an input file is missing, unreadable or invalid (exit 3, HTTP 422)
    │   ├── SchemaValidationError names the failing JSON path
    │   └── DuplicateNameError    a workspace reuses a name as pyhf refuses (``engine.duplicates``)
    ├── NotFoundError             a run, project, user or object that does not exist (exit 4, HTTP 404)
    ├── ConflictError             the thing exists already / state forbids it (exit 5, HTTP 409)
    │   └── InstanceExistsError
    ├── PermissionDeniedError     RBAC refused (exit 6, HTTP 403)
    │   └── AuthenticationError   no valid credential (exit 10, HTTP 401)
    ├── IntegrityError            stored bytes or records do not match their digest (exit 7, HTTP 500)
    │   ├── DigestMismatchError
    │   └── VerificationError     offline verification failed, naming what (``verify/errors.py``)
    ├── TaskFailedError           the engine raised while running a task (exit 8, HTTP 422)
    ├── ConfigError               the instance is missing or misconfigured (exit 9, HTTP 500)
    └── PartError                 one part of a larger operation refused (a batch entry, an
                                  import line): the part's own error, exit code and HTTP status

The CLI turns these into ``error: <message>`` and the exit code, once, in ``cli.main``.
"""

from __future__ import annotations


class NSPError(Exception):
    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # A security-relevant refusal (denied access, failed authentication) carries the
        # audit event to record after its transaction rolled back: see Database.transaction.
        self.security_event: dict[str, object] | None = None

    def __str__(self) -> str:
        return self.message


class UsageError(NSPError):
    exit_code = 2
    http_status = 400


class ParamError(UsageError):
    pass


class UnknownTaskError(UsageError):
    pass


class FieldError(UsageError):
    """A request's field is missing, out of range or in conflict with another. The message speaks
    of the request; ``fields`` names its fields, for an adapter to point at its own spelling of
    them (a CLI's options, an HTTP body's members)."""

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


class TextError(UsageError):
    """Text that people read (a printed name, a reason, a tag...) holds a character the rules
    of ``nextstat_pro.text`` refuse, or is too long. ``field`` names it; ``char`` is the
    refused character (None for a length)."""

    def __init__(self, field: str, message: str, char: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.char = char


class InputError(NSPError):
    exit_code = 3
    http_status = 422


class SchemaValidationError(InputError):
    def __init__(self, what: str, path: str, detail: str) -> None:
        super().__init__(f"{what} is invalid at {path}: {detail}")
        self.path = path
        self.detail = detail


class DuplicateNameError(InputError):
    """A workspace uses a channel, sample, modifier or parameter name twice in a way pyhf
    0.7.6 refuses to build a model from; the message says where."""


class NotFoundError(NSPError):
    exit_code = 4
    http_status = 404


class ConflictError(NSPError):
    exit_code = 5
    http_status = 409


class InstanceExistsError(ConflictError):
    pass


class PermissionDeniedError(NSPError):
    exit_code = 6
    http_status = 403


class AuthenticationError(PermissionDeniedError):
    """Not logged in, wrong password, locked, disabled, expired or revoked credential."""

    exit_code = 10
    http_status = 401


class IntegrityError(NSPError):
    exit_code = 7
    http_status = 500


class DigestMismatchError(IntegrityError):
    def __init__(self, expected: str, actual: str, where: str) -> None:
        super().__init__(f"object {expected} is corrupt: its bytes hash to {actual} ({where})")
        self.expected = expected
        self.actual = actual


class TaskFailedError(NSPError):
    exit_code = 8
    http_status = 422


class ConfigError(NSPError):
    exit_code = 9
    http_status = 500


class PartError(NSPError):
    """One part of a larger operation was refused: ``error`` is that part's own error, and
    this one takes its exit code and HTTP status, with a message that says which part."""

    def __init__(self, message: str, error: NSPError) -> None:
        super().__init__(message)
        self.error = error
        self.exit_code, self.http_status = error.exit_code, error.http_status


class Terminated(BaseException):
    """SIGTERM, raised by an adapter's signal handler so that work in progress can end as
    cancelled (like KeyboardInterrupt for SIGINT); a BaseException, so no ``except Exception``
    swallows it."""
