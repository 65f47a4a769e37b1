"""Pure ASGI guards around the whole studio app (page, static files, docs and API alike).

- `SecurityHeaders`: a Content-Security-Policy (and nosniff, no-referrer, no framing) on every response; the
  /docs page gets a policy of its own that lets the bundled Swagger UI run, still with no outside source.
- `LoopbackGuard`: on a loopback server (the default), only requests whose Host names the loopback
  (localhost, 127.x.x.x, [::1], any port) are answered, which defeats DNS rebinding (evil.example resolving
  to 127.0.0.1), and state-changing requests (POST, ...) from another origin are refused (a page elsewhere
  posting a form or a photo to the studio).
- `BodyTimeout`: a request body must arrive within a time budget; a client that declares a longer
  Content-Length than it sends gets 408 and the connection is closed, instead of holding it open forever.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from urllib.parse import urlsplit

# 'wasm-unsafe-eval' lets the page compile onnxruntime-web's WebAssembly (generation in the browser); it allows
# WebAssembly compilation only, not eval() of JavaScript.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI sets inline styles and shows data: icons; its scripts are the bundled files plus /static/docs.js.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _json_response(status: int, detail: str, extra_headers: list[tuple[bytes, bytes]] | None = None):
    body = json.dumps({"detail": detail, "field": None}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return headers + list(extra_headers or []), body


async def send_json(send, status: int, detail: str, extra_headers=None) -> None:
    headers, body = _json_response(status, detail, extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds the CSP and the other hardening headers to every HTTP response that does not set its own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        csp = (DOCS_CSP if path == "/docs" else PAGE_CSP).encode()

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                have = {k.lower() for k, _ in headers}
                for k, v in ((b"content-security-policy", csp), *COMMON_HEADERS):
                    if k not in have:
                        headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def split_host(value: str) -> tuple[str, str]:
    """'localhost:8000' -> ('localhost', '8000'); '[::1]:80' -> ('::1', '80'); '127.0.0.1' -> ('127.0.0.1', '')."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if value.count(":") > 1:  # a bare IPv6 address (not valid in a Host header, but not ours to guess)
        return value, ""
    host, _, port = value.partition(":")
    return host, port


def is_loopback_name(host: str) -> bool:
    host = host.strip().lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackGuard:
    """On a loopback server: 403 unless Host is a loopback name, and 403 for cross-origin state-changing requests."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        host_value = headers.get(b"host", b"").decode("latin-1")
        host, _port = split_host(host_value)
        if not is_loopback_name(host):
            shown = host_value[:80] or "(none)"
            return await send_json(
                send,
                403,
                f"Host {shown!r} is not this computer: a studio bound to the loopback address only answers "
                "http://127.0.0.1:PORT/ or http://localhost:PORT/ (a guard against DNS rebinding). "
                "To serve other names, start it with --host and --token",
            )
        if scope.get("method", "GET").upper() not in SAFE_METHODS:
            problem = self._cross_origin(headers, host_value, scope.get("scheme", "http"))
            if problem:
                return await send_json(send, 403, problem)
        await self.app(scope, receive, send)

    @staticmethod
    def _cross_origin(headers: dict[bytes, bytes], host_value: str, scheme: str) -> str | None:
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1").strip()
            parts = urlsplit(text) if text != "null" else None
            same = (
                parts is not None
                and parts.scheme == scheme
                and parts.netloc.lower() == host_value.strip().lower()
                and is_loopback_name(parts.hostname or "")
            )
            if not same:
                return (
                    f"cross-origin request refused: a page from {text[:80]!r} may not send requests to the "
                    "studio on this computer. Use the studio page itself, or a client that sends no Origin "
                    "header (curl, scripts)"
                )
            return None
        site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
        if site in ("cross-site", "same-site"):
            return (
                "cross-origin request refused: the browser reports it comes from another site. Use the "
                "studio page itself, or a client that sends no Origin header (curl, scripts)"
            )
        return None


class BodyTimeout:
    """408 (and the connection closed) when a request body does not arrive in full within `seconds`."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        complete = False

        async def timed_receive():
            nonlocal complete
            if complete:  # after the body: waiting for a disconnect is fine, for as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                from starlette.exceptions import HTTPException

                raise HTTPException(
                    408,
                    f"request body not received within {self.seconds:g} s (fewer bytes arrived than "
                    "Content-Length declared); send the whole body at once",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed_receive, send)
