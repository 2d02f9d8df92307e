"""The operator page's web server (aiohttp): the page and its script from static/, and a small JSON API.

    GET  /                      the page (with ?token=T: sets the token cookie and redirects to /)
    GET  /frame.jpg?view=image|heatmap&after=SEC.NSEC
                                the newest frame newer than `after` (waits up to 1 s; 204 when none came), as JPEG;
                                headers X-Stamp (sec.nanosec), X-Width, X-Height, X-Targets (JSON: the targets'
                                states on this frame, while tracking); 503 beyond the caps on waiting requests
    GET  /api/status            targets (id, state, confidence, box, lost_frames), the tracker's input counts from
                                /diagnostics, this process's own frame count and rate
    GET  /api/config            stream rate, topic and service names
    POST /api/init              {"target_id", "stamp": "SEC.NSEC", "box": [x, y, w, h]} -> init_target's answer
    POST /api/stop              {"target_id"} ("" stops all) -> stop_target's answer

Every request passes access.Access's checks first (Host, token, and for a POST its Content-Type and Origin).
Each init and stop is logged with the client's address and Origin.
"""
from __future__ import annotations

import asyncio
import collections
import json
import math
from pathlib import Path

from aiohttp import web

from .access import Access
from .bridge import format_stamp, parse_stamp

STATIC = Path(__file__).resolve().parent / "static"
FRAME_WAIT_S = 1.0
MAX_BODY_BYTES = 64 * 1024
MAX_TARGET_ID = 256  # the tracker enforces its own (shorter) limit; this only keeps absurd ids out
MAX_WAITING_PER_CLIENT = 32  # frame.jpg requests held at once by one client address (a browser tab holds <= 6)
MAX_WAITING = 256  # and by all clients together: each is a coroutine and a socket, no thread
KEEPALIVE_S = 75.0  # an idle connection is closed after this (the page asks several times a second)


def make_app(bridge, access: Access) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[access.middleware])
    app.on_response_prepare.append(access.add_headers)
    app["bridge"] = bridge
    app["waiting"] = collections.Counter()  # client address -> frame.jpg requests held
    app.router.add_get("/", _index)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_get("/frame.jpg", _frame)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/config", _config)
    app.router.add_post("/api/init", _init)
    app.router.add_post("/api/stop", _stop)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml",
                                                               "Cache-Control": "max-age=86400"})


async def _frame(request: web.Request) -> web.Response:
    bridge = request.app["bridge"]
    view = request.query.get("view", "image")
    if view not in ("image", "heatmap"):
        return _error(400, f"view must be image or heatmap, not {view[:40]!r}")
    try:
        after = parse_stamp(request.query.get("after", "0"))
    except ValueError as err:
        return _error(400, str(err))
    waiting, client = request.app["waiting"], request.remote or ""
    if waiting[client] >= MAX_WAITING_PER_CLIENT or sum(waiting.values()) >= MAX_WAITING:
        return web.json_response({"success": False, "message": "too many frame requests waiting: ask again"},
                                 status=503, headers={"Retry-After": "1", "Cache-Control": "no-store"})
    waiting[client] += 1
    try:
        shown = await bridge.frame(view, after, FRAME_WAIT_S)
    except Exception as err:  # an image the converter refuses: the page says why
        return _error(422, f"cannot show the image: {type(err).__name__}: {err}")
    finally:
        waiting[client] -= 1
        if not waiting[client]:
            del waiting[client]
    if shown is None:
        return web.Response(status=204, headers={"Cache-Control": "no-store"})
    return web.Response(body=shown.jpeg, content_type="image/jpeg", headers={
        "X-Stamp": format_stamp(shown.stamp_ns), "X-Width": str(shown.width), "X-Height": str(shown.height),
        "X-Targets": json.dumps(list(shown.targets)), "Cache-Control": "no-store"})


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app["bridge"].status(), headers={"Cache-Control": "no-store"})


async def _config(request: web.Request) -> web.Response:
    bridge = request.app["bridge"]
    return web.json_response({
        "stream_rate": float(bridge.get_parameter("stream_rate").value),
        "image_topic": bridge.image_topic,
        "init_service": bridge.init_service,
        "stop_service": bridge.stop_service,
        "node": bridge.get_fully_qualified_name(),
    })


# The `reason` of an answer the page gives itself, beside the services' REASON_* constants it passes on.
REASON_BAD_REQUEST = "bad_request"  # the request to the page: its body, id, stamp or box
REASON_NO_SERVICE = "no_service"  # the node's service is not there
REASON_NO_ANSWER = "no_answer"  # the service did not answer within service_timeout
REASON_CALL_FAILED = "call_failed"  # the call raised


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "reason": REASON_BAD_REQUEST, "message": message}, status=status)


class BadRequest(ValueError):
    """A request body the page refuses: `status` (400, 413) and the reason."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


async def _body(request: web.Request) -> dict:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(f"the body is {request.content_length} bytes: at most {MAX_BODY_BYTES}", 413)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes", 413) from None
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise BadRequest(f"the body must be JSON: {err}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _target_id(body: dict) -> str:
    """The id as the tracker node checks it (its pattern; empty: the default target), so that no NUL, line break
    or lone surrogate reaches a ROS string; the node still applies its own length limit."""
    from siam_tracker_ros.ros.messages import TARGET_ID_PATTERN

    target_id = body.get("target_id", "")
    if not isinstance(target_id, str):
        raise BadRequest(f"target_id must be a string, not {type(target_id).__name__}")
    if len(target_id) > MAX_TARGET_ID:
        raise BadRequest(f"target_id must have at most {MAX_TARGET_ID} characters")
    if target_id and not TARGET_ID_PATTERN.fullmatch(target_id):
        raise BadRequest(f"target_id {target_id[:32]!r} has characters other than A-Z a-z 0-9 _ . : / -")
    return target_id


def _box(value) -> list[float]:
    if not isinstance(value, list) or len(value) != 4 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise BadRequest("box must be a JSON array of four numbers [x, y, width, height] in image pixels, "
                         f"got {json.dumps(value)[:60]}")
    box = [float(v) for v in value]
    if not all(math.isfinite(v) for v in box):
        raise BadRequest("box must be four finite numbers")
    return box


async def _call(bridge, client, what: str, req) -> dict:
    """Call a service from this coroutine: the rclpy future is completed by the executor's thread."""
    if not client.service_is_ready():
        return {"success": False, "reason": REASON_NO_SERVICE,
                "message": f"service {what} is not available: is the tracker node running in this namespace and "
                           f"ROS_DOMAIN_ID?"}
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finished(f):
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(f))

    future = client.call_async(req)
    future.add_done_callback(finished)
    timeout = float(bridge.get_parameter("service_timeout").value)
    try:
        f = await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        future.cancel()
        return {"success": False, "reason": REASON_NO_ANSWER, "message": f"no answer from {what} within {timeout:g} s"}
    if f.exception() is not None:
        return {"success": False, "reason": REASON_CALL_FAILED, "message": f"{what} failed: {f.exception()}"}
    res = f.result()
    result = {"success": bool(res.success), "reason": res.reason, "message": res.message}
    if hasattr(res, "target_id"):  # InitTarget's
        result.update(target_id=res.target_id, caught_up_frames=int(res.caught_up_frames))
    return result


def _audit(request: web.Request, what: str, target_id: str, result: dict) -> None:
    request.app["bridge"].get_logger().info(
        f"{what} '{target_id}' asked by {request.remote} (Origin {request.headers.get('Origin', 'none')!r}): "
        f"{'done' if result['success'] else 'refused (' + result['reason'] + ')'}: {result['message']}")


async def _init(request: web.Request) -> web.Response:
    bridge = request.app["bridge"]
    try:
        body = await _body(request)
        target_id = _target_id(body)
        stamp = parse_stamp(body.get("stamp", ""))
        box = _box(body.get("box"))
        req = bridge.init_request(stamp, box, target_id)
    except BadRequest as err:
        return _error(err.status, str(err))
    except ValueError as err:  # parse_stamp's reason
        return _error(400, str(err))
    except (TypeError, OverflowError, AssertionError) as err:  # a message field's own checks
        return _error(400, f"{type(err).__name__}: {err}")
    result = await _call(bridge, bridge.init_client, bridge.init_service, req)
    _audit(request, "init", target_id, result)
    if result["success"]:
        bridge.started(result.get("target_id") or target_id)
    result["stamp"] = format_stamp(stamp)
    return web.json_response(result)


async def _stop(request: web.Request) -> web.Response:
    bridge = request.app["bridge"]
    try:
        body = await _body(request)
        target_id = _target_id(body)
    except BadRequest as err:
        return _error(err.status, str(err))
    result = await _call(bridge, bridge.stop_client, bridge.stop_service, bridge.stop_request(target_id))
    _audit(request, "stop", target_id, result)
    if result["success"]:
        bridge.forget(target_id)
    return web.json_response(result)


async def serve(bridge, access: Access, host: str, port: int, stop: asyncio.Event, ready=None,
                ssl_context=None) -> None:
    """Serve until `stop` is set; `ready(url)` is called once the socket listens (port 0: the port chosen), with
    the URL to open (the token in it)."""
    bridge.attach_loop(asyncio.get_running_loop())
    runner = web.AppRunner(make_app(bridge, access), access_log=None, keepalive_timeout=KEEPALIVE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    access.port = runner.addresses[0][1] if runner.addresses else port  # the port chosen when 0 was asked
    shown_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
    scheme = "https" if ssl_context is not None else "http"
    if ready is not None:
        ready(f"{scheme}://{shown_host}:{access.port}/" + (f"?token={access.token}" if access.token else ""))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
