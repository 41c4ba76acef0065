"""HTML for the browser pages: Jinja templates (every value escaped), headers, error pages.

Pages carry no script at all (the Content-Security-Policy forbids any) and load only the
app's own stylesheet, so they work offline and without JavaScript. Clinical pages are never
stored by a cache. Errors on a page route are pages too: the domain's sentence under the
HTTP status, never a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect
from litestar.types import ExceptionHandlersMap

from api.errors import STATUS_BY_KIND, _parameter_errors
from domain.errors import DomainError

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every {{ value }} is HTML-escaped; nothing is marked safe but the figure
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Erased",
    413: "Request too large",
    422: "Not allowed by the rules",
}


def page(
    template: str, *, status: int = 200, cookies: list[Any] | None = None, **context: Any
) -> Response[str]:
    html = _ENV.get_template(template).render(**context)
    return Response(
        html,
        status_code=status,
        media_type="text/html",
        headers=PAGE_HEADERS,
        cookies=cookies or [],
    )


class SignInRequired(Exception):
    """No valid session for a page: the browser is sent to the sign-in form, then back."""

    def __init__(self, back_to: str) -> None:
        super().__init__("sign-in required")
        self.back_to = back_to


SESSION_COOKIE = "oncoledger_session"
_LOCAL_PAGE = re.compile(
    r"^/patients(/[A-Za-z0-9._-]{1,64}(/chart\.(svg|png|pdf))?)?/?(\?[^\s#]*)?$"
)


def safe_next(back_to: str | None) -> str:
    """Where to go after signing in: one of our own pages, never another site."""
    if back_to and _LOCAL_PAGE.match(back_to):
        return back_to
    return "/patients"


def to_sign_in(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    back_to = safe_next(exc.back_to if isinstance(exc, SignInRequired) else "/patients")
    response: Response[Any] = Redirect(
        path="/login", query_params={"next": back_to}, status_code=303
    )
    if request.cookies.get(SESSION_COOKIE):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    """A refusal on a page route as a page: status, a title and the domain's sentence."""
    if isinstance(exc, DomainError):
        status = STATUS_BY_KIND.get(exc.kind, 400)
        detail = exc.message
    elif isinstance(exc, ValidationException):
        status, detail = 400, _parameter_errors(exc)[0]
    elif isinstance(exc, HTTPException):
        status, detail = exc.status_code, str(exc.detail)
    else:  # registered only for the classes above
        raise exc
    if status >= 500:
        detail = "The server could not answer this page."
    return page(
        "error.html",
        status=status,
        title=_TITLES.get(status, "Error"),
        status_code=status,
        detail=detail,
        session=request.scope.get("web_session"),
    )


def pages_as_html(handlers: ExceptionHandlersMap) -> ExceptionHandlersMap:
    """The app's JSON error handlers, answering with error pages under the pages' paths
    (an unknown path or method there is met by the router, before any page handler)."""

    def dispatch(api_handler: Any) -> Any:
        def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
            path = request.url.path
            response: Response[Any]
            if not path.startswith(("/patients", "/login", "/logout")):
                response = api_handler(request, exc)
                return response
            if isinstance(exc, DomainError | HTTPException):
                return error_page(request, exc)
            # Anything else: logged with its correlation id by the API's handler, told as a page.
            response = api_handler(request, exc)
            extra = getattr(response.content, "extra", None) or {}
            return page(
                "error.html",
                status=500,
                title=_TITLES.get(500, "Error"),
                status_code=500,
                detail="The server could not answer this page (correlation id "
                f"{extra.get('correlation_id', 'unknown')}; the server log has the details).",
                session=request.scope.get("web_session"),
            )

        return handler

    return {kind: dispatch(api_handler) for kind, api_handler in handlers.items()}


PAGE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    SignInRequired: to_sign_in,
    DomainError: error_page,
    HTTPException: error_page,
}
