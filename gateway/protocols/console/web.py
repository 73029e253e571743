"""What every console route shares: HTML answers with the console's security headers,
redirects, cookies and form bodies.

- The session cookie (:data:`SESSION_COOKIE`) and the login form's cookie
  (:data:`LOGIN_COOKIE`) are ``HttpOnly``, ``SameSite=Strict``, limited to the console's path,
  and ``Secure`` when ``api.public_url`` is https.
- A form body must be ``application/x-www-form-urlencoded`` UTF-8 (415 / 400 otherwise); each
  field is read once, its first value. A file upload is ``multipart/form-data``
  (:func:`multipart`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.protocols.api.http import Call, Response
from gateway.render.console import HTML, PAGE_HEADERS, render

SESSION_COOKIE = "gw_console"
LOGIN_COOKIE = "gw_console_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_FIELDS = 32


@dataclass(frozen=True)
class Site:
    """Where the console is: ``root``, the path of ``{public_url}/console``; ``secure``:
    cookies only over https."""

    root: str
    secure: bool

    @classmethod
    def of(cls, public_url: str) -> Site:
        parts = urlsplit(public_url)
        return cls(parts.path.rstrip("/") + "/console", parts.scheme == "https")


def html(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, body.encode("utf-8"), HTML, {**PAGE_HEADERS, **(headers or {})})


def page(status: int, template: str, **context: Any) -> Response:
    return html(status, render(template, **context))


def redirect(call: Call, location: str) -> Response:
    """303 to ``location``; an htmx request is told to navigate there (``HX-Redirect``)."""
    if call.request.getHeader("hx-request") == "true":
        return html(200, "", {"HX-Redirect": location})
    return html(303, "", {"Location": location})


def cookie(call: Call, name: str) -> str | None:
    raw = call.request.getCookie(name.encode())
    if raw is None:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def set_cookie(call: Call, site: Site, name: str, value: str, path: str) -> None:
    call.request.addCookie(
        name,
        value,
        path=path,
        secure=site.secure,
        httpOnly=True,
        sameSite="strict",
    )


def clear_cookie(call: Call, site: Site, name: str, path: str) -> None:
    call.request.addCookie(
        name,
        "",
        path=path,
        max_age="0",
        expires="Thu, 01 Jan 1970 00:00:00 GMT",
        secure=site.secure,
        httpOnly=True,
        sameSite="strict",
    )


class FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def form(call: Call) -> dict[str, str]:
    """The fields of a form post (the first value of each)."""
    ctype = (call.request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise FormError(415, "フォームの形式が正しくありません")
    try:
        text = call.body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "フォームの内容を読めませんでした") from None
    return {name: values[0] for name, values in fields.items() if "\x00" not in values[0]}


@dataclass(frozen=True)
class Part:
    """One part of a ``multipart/form-data`` post: a field, or a file (``filename`` set)."""

    name: str
    filename: str | None
    data: bytes

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


_PARAM = re.compile(r';\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _params(value: str) -> dict[str, str]:
    return {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM.finditer(value)
    }


def multipart(call: Call) -> dict[str, Part]:
    """The parts of a ``multipart/form-data`` post (RFC 7578), the first of each name; a file
    part keeps its bytes as sent. :class:`FormError` for another media type or a body that is
    not one."""
    ctype = call.request.getHeader("content-type") or ""
    if ctype.split(";")[0].strip().lower() != "multipart/form-data":
        raise FormError(415, "フォームの形式が正しくありません")
    boundary = _params(ctype).get("boundary", "")
    if not 0 < len(boundary) <= 70:
        raise FormError(400, "フォームの内容を読めませんでした")
    chunks = call.body.split(b"--" + boundary.encode("latin-1"))
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise FormError(400, "フォームの内容を読めませんでした")
    parts: dict[str, Part] = {}
    for chunk in chunks[1:-1][:MAX_FIELDS]:
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"\r\n") or not data.endswith(b"\r\n"):
            raise FormError(400, "フォームの内容を読めませんでした")
        disposition = ""
        for line in head[2:].split(b"\r\n"):
            name, _, value = line.decode("utf-8", "replace").partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value
        params = _params(disposition)
        if "name" in params and params["name"] not in parts:
            parts[params["name"]] = Part(params["name"], params.get("filename"), data[:-2])
    return parts


def client_address(call: Call) -> str:
    return str(getattr(call.request.getClientAddress(), "host", "unknown"))[:45]
