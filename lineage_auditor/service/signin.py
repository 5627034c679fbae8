"""Signing in to the pages from a browser: the same bearer token, kept in a cookie.

A browser cannot add ``Authorization: Bearer`` to the links it follows, so ``GET /login``
asks for the token once (a form, no script) and ``POST /login`` checks it against the token
file and sets it as an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` over HTTPS). The
cookie is accepted for the pages only: the ingest endpoint and ``/metrics`` still need the
header, so no other site can make a signed-in browser write lineage. A page asked for by a
browser without credentials redirects to the form; API clients keep getting 401.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lineage_auditor.service.access import Access

COOKIE = "lineage_audit_token"
MAX_FORM = 4096  # a token and a path


def page_credentials(request: Request) -> str | None:
    """The Authorization header, else the sign-in cookie as a bearer token."""
    header = request.headers.get("authorization")
    if header:
        return header
    token = request.cookies.get(COOKIE)
    return f"Bearer {token}" if token else None


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def to_login(request: Request) -> RedirectResponse:
    """Where a browser without credentials goes: the form, coming back to this page after."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def install_signin(app: FastAPI, access: Access, login_page: Callable[..., str]) -> None:
    """The sign-in routes; ``login_page(next=..., error=...)`` renders the form (reports.service_pages)."""

    @app.get("/login")
    def login_form(next: str = "/") -> Response:
        return HTMLResponse(login_page(next=_local(next), error=""))

    @app.post("/login")
    async def login(request: Request) -> Response:
        body = await request.body()
        fields = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"))
        token, target = (fields.get("token") or [""])[0].strip(), _local((fields.get("next") or ["/"])[0])
        if access.book is not None and access.book.user(token) is None:
            return HTMLResponse(login_page(next=target, error="unknown or revoked token"), status_code=401)
        answer = RedirectResponse(target, status_code=303)
        if access.book is not None:
            answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                              secure=request.url.scheme == "https")
        return answer

    @app.get("/logout")
    def logout() -> Response:
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE, path="/")
        return answer


def _local(target: str) -> str:
    """``target`` when it is a path on this site, else ``/`` (no redirect to another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target


__all__ = ["COOKIE", "install_signin", "page_credentials", "to_login", "wants_html"]
