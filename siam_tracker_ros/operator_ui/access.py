"""Who may use the operator page: the checks every request passes before a handler runs (an aiohttp middleware).

The page decides what the robot follows, and the browser that shows it also visits other sites. So:
- the Host header must name this page (loopback names at its port, or the names the operator configured): a
  hostile site whose DNS name is re-pointed at 127.0.0.1 (DNS rebinding) is refused before it sees a frame;
- a token (random per start, or a fixed one from a parameter or file) is needed for everything but the icon: as the
  HttpOnly SameSite=Strict cookie the first visit with `?token=` sets, as `?token=`, or as `Authorization: token T`
  (scripts); compared in constant time;
- a POST (the only requests that change anything) must carry `Content-Type: application/json` (a form or a "simple"
  cross-site fetch cannot) and, when a browser sent it, an Origin that is this page's, or `Sec-Fetch-Site`
  same-origin / none. A request with neither header is not from a browser's page (browsers send Origin on every
  POST), so no other site can have forged it;
- every answer says: never in a frame (X-Frame-Options, CSP frame-ancestors), no type sniffing, no referrer (the
  token is in the first URL), readable by this origin only (Cross-Origin-Resource-Policy).
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits
MIN_TOKEN_LENGTH = 16  # a fixed token shorter than this is refused (a password an operator might guess)
OPEN_PATHS = ("/favicon.ico", "/static/favicon.svg")  # served to anyone whose Host is allowed
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class AccessError(ValueError):
    """A configuration the page refuses to start with (the message says what to change)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def check_token(token: str) -> str:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise AccessError(f"the token must have at least {MIN_TOKEN_LENGTH} characters (got {len(token)})")
    if any(c.isspace() or not c.isprintable() or c in ";," for c in token) or not token.isascii():
        raise AccessError("the token must be printable ASCII without spaces, ';' or ','")
    return token


@dataclass
class Access:
    """The page's access rules. `token` None: no token asked (loopback only, refused elsewhere by main.py)."""

    token: str | None
    port: int = 0  # the port the page is served on (set once bound)
    allowed_hosts: tuple = ()  # extra Host names, any port (the robot's DNS name, a reverse proxy's name)
    secure_cookie: bool = False  # served over TLS: the cookie is sent over HTTPS only
    log: object = None  # a callable(str) for refused state-changing requests
    refused: dict = field(default_factory=dict)  # reason -> count of the requests refused for it

    @property
    def cookie_name(self) -> str:
        # cookies are not separated by port: two pages on one machine each keep their own
        return f"siam_operator_token_{self.port}"

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = host_header.strip().lower()
        name, port = host, None
        if host.startswith("["):  # [::1]:8080
            end = host.find("]")
            name, rest = host[:end + 1], host[end + 1:]
            port = rest[1:] if rest.startswith(":") else None
        elif host.count(":") == 1:
            name, port = host.split(":")
        if name in (h.lower() for h in self.allowed_hosts):
            return True
        return name in LOOPBACK_NAMES and port == str(self.port)

    def token_of(self, request: web.Request) -> tuple[str | None, str]:
        """The token the request carries and how (header, query, cookie)."""
        auth = request.headers.get("Authorization", "")
        if auth[:6].lower() == "token ":
            return auth[6:].strip(), "header"
        if "token" in request.query:
            return request.query["token"], "query"
        if self.cookie_name in request.cookies:
            return request.cookies[self.cookie_name], "cookie"
        return None, ""

    def token_valid(self, given: str | None) -> bool:
        if self.token is None:
            return True
        if given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.token.encode())

    def origin_error(self, request: web.Request) -> str | None:
        """Why a state-changing request may not have come from this page (None: it may)."""
        origin = request.headers.get("Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != request.headers["Host"].lower():
                return f"Origin {origin[:100]!r} is not this page's"
            return None
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return f"Sec-Fetch-Site {fetch_site[:32]!r} without an Origin"
        return None

    def refuse(self, request: web.Request, status: int, reason: str, message: str) -> web.Response:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        if request.method == "POST" and self.log is not None:
            self.log(f"refused {request.method} {request.path} from {request.remote} (Origin "
                     f"{request.headers.get('Origin', 'none')!r}, Host {request.headers.get('Host', '')[:100]!r}): "
                     f"{message}")
        return web.json_response({"success": False, "reason": reason, "message": message}, status=status)

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if not self.host_allowed(request.headers.get("Host")):
            return self.refuse(request, 403, "host", "this page answers to its own address only (Host "
                               f"{request.headers.get('Host', '')[:100]!r} is not allowed: set allowed_hosts)")
        if request.path in OPEN_PATHS:
            return await handler(request)
        given, how = self.token_of(request)
        if not self.token_valid(given):
            if request.path == "/" and request.method == "GET":
                return web.Response(status=401, content_type="text/html", text=LOGIN_PAGE)
            return self.refuse(request, 401, "token", "a token is needed: open the URL with ?token= that the page's "
                               "process logged, or send 'Authorization: token <token>'")
        if request.method not in ("GET", "HEAD", "POST"):
            return self.refuse(request, 405, "method", f"method {request.method[:16]} is not served here")
        if request.method == "POST":
            if request.content_type != "application/json":
                return self.refuse(request, 415, "content_type", "a request that changes something must be "
                                   f"Content-Type application/json (got {request.content_type!r})")
            why = self.origin_error(request)
            if why:
                return self.refuse(request, 403, "origin", f"cross-site request refused: {why}")
        if how == "query" and self.token is not None and request.path == "/" and request.method == "GET":
            # the first visit: the token moves into a cookie and out of the address bar (and the history)
            response = web.Response(status=303, headers={"Location": "/", "Cache-Control": "no-store"})
            response.set_cookie(self.cookie_name, given, httponly=True, samesite="Strict", path="/",
                                secure=self.secure_cookie)
            return response
        return await handler(request)

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: every answer, errors and static files included."""
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)


LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Tracker operator: token needed</title></head>
<body><h1>Token needed</h1>
<p>Open the address with <code>?token=...</code> that the operator page's process logged when it started
(<code>siam-tracker ui</code> prints it; with <code>ros2 launch</code> it is in the launch log).</p></body></html>
"""
