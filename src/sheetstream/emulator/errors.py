"""Google's error bodies: google.rpc.Status for Sheets, the older `errors[]` list for Drive.

Handlers raise `ApiError`; the app renders it in the shape of the API the request was for, so a client's error
parsing (gspread's APIError, googleapiclient's HttpError, google-auth's RefreshError) sees what Google sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import JSONResponse

Surface = Literal["sheets", "drive", "oauth"]

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DRIVE_REASONS = {
    400: "badRequest",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    501: "notImplemented",
    503: "backendError",
    504: "backendError",
}
NO_CREDENTIALS = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
BAD_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


@dataclass
class ApiError(Exception):
    """An error answer. `reason`/`location` fill Drive's `errors[]`; `details` fill google.rpc.Status's."""

    code: int
    message: str
    reason: str | None = None
    location: str | None = None
    location_type: str | None = None
    details: list[dict[str, Any]] = field(default_factory=list)
    drive_message: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def sheets_body(err: ApiError) -> dict[str, Any]:
    """`{"error": {"code", "message", "status", "details"?}}`."""
    body: dict[str, Any] = {
        "code": err.code,
        "message": err.message,
        "status": STATUS_NAMES.get(err.code, "UNKNOWN"),
    }
    if err.details:
        body["details"] = err.details
    return {"error": body}


def drive_body(err: ApiError) -> dict[str, Any]:
    """`{"error": {"code", "message", "errors": [{"domain", "reason", "message", "location"?, ...}]}}`."""
    message = err.drive_message or err.message
    item: dict[str, Any] = {
        "message": message,
        "domain": "global",
        "reason": err.reason or DRIVE_REASONS.get(err.code, "backendError"),
    }
    if err.location:
        item["location"] = err.location
        item["locationType"] = err.location_type or "parameter"
    return {"error": {"code": err.code, "message": message, "errors": [item]}}


def error_response(err: ApiError, surface: Surface) -> JSONResponse:
    """The HTTP answer for an error on one of the emulated APIs."""
    body = drive_body(err) if surface == "drive" else sheets_body(err)
    return JSONResponse(body, status_code=err.code)


def error_info(reason: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """A google.rpc.ErrorInfo detail."""
    info: dict[str, Any] = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
    }
    if metadata:
        info["metadata"] = metadata
    return info


def invalid_argument(message: str) -> ApiError:
    """400 INVALID_ARGUMENT."""
    return ApiError(400, message, reason="badRequest")


def bad_range(text: str) -> ApiError:
    """400 for a range that does not parse or names no tab."""
    return ApiError(400, f"Unable to parse range: {text}", reason="badRequest")


def grid_limits(range_text: str, rows: int, cols: int) -> ApiError:
    """400 for a range past the tab's grid."""
    return ApiError(400, f"Range ({range_text}) exceeds grid limits. Max rows: {rows}, max columns: {cols}")


def not_found() -> ApiError:
    """404 for an unknown (or invisible) spreadsheet, as Sheets says it."""
    return ApiError(404, "Requested entity was not found.")


def file_not_found(file_id: str) -> ApiError:
    """404 for an unknown file, as Drive says it."""
    return ApiError(
        404, f"File not found: {file_id}.", reason="notFound", location="fileId", location_type="parameter"
    )


def permission_denied(drive_file: str | None = None) -> ApiError:
    """403 for a caller that may not see or change the resource."""
    drive_message = (
        f"The user does not have sufficient permissions for file {drive_file}." if drive_file else None
    )
    return ApiError(
        403,
        "The caller does not have permission",
        reason="insufficientFilePermissions" if drive_file else "forbidden",
        drive_message=drive_message,
    )


def unauthenticated(missing: bool) -> ApiError:
    """401 for missing or unknown credentials."""
    reason = "CREDENTIALS_MISSING" if missing else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
    return ApiError(
        401,
        NO_CREDENTIALS if missing else BAD_CREDENTIALS,
        reason="required" if missing else "authError",
        location="Authorization",
        location_type="header",
        details=[error_info(reason, {"service": "sheets.googleapis.com"})],
        drive_message="Login Required." if missing else "Invalid Credentials",
    )


def invalid_api_key() -> ApiError:
    """400 for an API key the emulator was not given (strict mode)."""
    return ApiError(
        400,
        "API key not valid. Please pass a valid API key.",
        reason="keyInvalid",
        details=[error_info("API_KEY_INVALID", {"service": "sheets.googleapis.com"})],
        drive_message="Bad Request",
    )


def quota_exceeded(kind: str, per: str, limit: int, service: str) -> ApiError:
    """429 RESOURCE_EXHAUSTED with Google's ErrorInfo, e.g. kind "Read", per "user"."""
    limit_name = f"{kind}RequestsPerMinutePer{per.capitalize()}"
    metric = f"{service}/{kind.lower()}_requests"
    message = (
        f"Quota exceeded for quota metric '{kind} requests' and limit '{kind} requests per minute per {per}' "
        f"of service '{service}' for consumer 'project_number:000000000000'."
    )
    metadata = {
        "service": service,
        "quota_metric": metric,
        "quota_limit": limit_name,
        "quota_limit_value": str(limit),
        "consumer": "projects/000000000000",
        "quota_location": "global",
    }
    details = [
        error_info("RATE_LIMIT_EXCEEDED", metadata),
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase",
                }
            ],
        },
    ]
    return ApiError(
        429, message, reason="rateLimitExceeded", details=details, drive_message="Rate Limit Exceeded"
    )


def server_error(code: int) -> ApiError:
    """A 5xx (or forced 429) answer as Google words it."""
    if code == 429:
        return quota_exceeded("Read", "user", 60, "sheets.googleapis.com")
    messages = {
        500: "Internal error encountered.",
        502: "Bad Gateway",
        503: "The service is currently unavailable.",
        504: "The service is currently unavailable.",
    }
    return ApiError(code, messages.get(code, "Internal error encountered."), drive_message="Backend Error")
