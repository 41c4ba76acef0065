"""Sign-in for the browser pages: `GET/POST /login`, `POST /logout`, and the page guard.

The token is typed once; the browser then holds only an HttpOnly, SameSite=Strict cookie naming
a server-side session tied to that token (`domain.ledger.web_sessions`). `/api/v1` stays
bearer-only: the cookie is never accepted there.

Forged cross-site POSTs (CSRF) are refused twice over. The cookie is SameSite=Strict, so a
browser never sends it with a request that another site starts. And every page POST must come
from this server's own pages by the browser's own account of it (OWASP's "verifying origin with
standard headers" and Fetch Metadata checks): `Sec-Fetch-Site`, when sent, must be
`same-origin` (or `none`: typed by the user), and `Origin`, else `Referer`, when sent, must be
this server. Browsers send them with every form POST, so a page elsewhere can neither sign a
victim's browser out nor into the attacker's own session; a client that sends neither is not a
browser carrying a victim's cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect

from api.html import PAGE_EXCEPTION_HANDLERS, SESSION_COOKIE, SignInRequired, page, safe_next
from api.reads import log_read
from domain.errors import Forbidden
from projections.root import WEB_SESSION_LIFETIME as LIFETIME
from projections.root import OncoLedger, WebSession, authorize

_FORGED = "This form did not come from this server's own page, so nothing was done."


@dataclass
class LoginForm:
    token: str = ""
    next: str = ""


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def _cookie(request: Request[Any, Any, Any], key: str, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path="/",
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def from_this_site(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser says this POST was started by one of this server's own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    here = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.rstrip("/") == here  # "null" (an opaque origin) is refused too
    referer = request.headers.get("referer")
    if referer is not None:
        return referer == here or referer.startswith(here + "/")
    return True


def signed_in(request: Request[Any, Any, Any], service: OncoLedger) -> WebSession:
    """The page's reader, or `SignInRequired` (no cookie, unknown, expired, revoked token)."""
    session = service.web_sessions.resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        back_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(back_to)
    request.scope["web_session"] = session  # type: ignore[typeddict-unknown-key]
    authorize(session.principal, "read", action="read clinical data")
    return session


def log_page(
    service: OncoLedger,
    request: Request[Any, Any, Any],
    session: WebSession,
    resource: str,
    patient_id: str | None = None,
) -> None:
    """Every page view is an access-log entry, like any other clinical read."""
    log_read(service, request, resource, patient_id, actor=session.principal.name, channel="web")


def _login_page(back_to: str, *, error: str | None = None, status: int = 200) -> Response[str]:
    return page(
        "login.html",
        status=status,
        title="Sign in",
        session=None,
        next=safe_next(back_to),
        error=error,
    )


class SignInController(Controller):
    path = "/"
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @get(path="/login", sync_to_thread=True)
    def login_form(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[OncoLedger],
        next: Annotated[
            str | None, QueryParameter(description="The page to return to after signing in")
        ] = None,
    ) -> Response[Any]:
        if service.web_sessions.resolve(request.cookies.get(SESSION_COOKIE)) is not None:
            return Redirect(path=safe_next(next), status_code=303)
        return _login_page(next or "/patients")

    @post(path="/login", sync_to_thread=True, status_code=303)
    def login(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[OncoLedger],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        if not from_this_site(request):
            return _login_page(data.next, error=_FORGED, status=403)
        if not data.token.strip():
            return _login_page(data.next, error="Paste your API token to sign in.", status=400)
        opened = service.web_sessions.sign_in(data.token.strip())
        if opened is None:
            return _login_page(
                data.next,
                error="Unknown or revoked token. Ask an admin for one "
                "(oncoledger token create NAME --role reader).",
                status=401,
            )
        secret, session = opened
        try:
            authorize(session.principal, "read", action="read clinical data")
        except Forbidden as exc:
            service.web_sessions.sign_out(secret)
            return _login_page(data.next, error=exc.message, status=403)
        response: Response[Any] = Redirect(path=safe_next(data.next), status_code=303)
        response.set_cookie(_cookie(request, SESSION_COOKIE, secret, int(LIFETIME.total_seconds())))
        return response

    @post(path="/logout", sync_to_thread=True, status_code=303)
    def logout(
        self, request: Request[Any, Any, Any], service: NamedDependency[OncoLedger]
    ) -> Response[Any]:
        secret = request.cookies.get(SESSION_COOKIE)
        if not from_this_site(request):
            return page(
                "error.html",
                status=403,
                title="Not allowed",
                status_code=403,
                detail=_FORGED,
                session=service.web_sessions.resolve(secret),
            )
        service.web_sessions.sign_out(secret)
        response: Response[Any] = Redirect(path="/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
