"""The operator page's web server (aiohttp): the page and its script from static/, and a small JSON API.

    GET  /                      the page
    GET  /frame.jpg?view=image|heatmap&after=SEC.NSEC
                                the newest frame newer than `after` (waits up to 1 s; 204 when none came), as JPEG;
                                headers X-Stamp (sec.nanosec), X-Width, X-Height, X-Targets (JSON: the targets'
                                states on this frame, while tracking)
    GET  /api/status            targets (id, state, confidence, box, lost_frames), the tracker's input counts from
                                /diagnostics, this process's own frame count and rate
    GET  /api/config            stream rate, topic and service names
    POST /api/init              {"target_id", "stamp": "SEC.NSEC", "box": [x, y, w, h]} -> init_target's answer
    POST /api/stop              {"target_id"} ("" stops all) -> stop_target's answer

No authentication: it binds to 127.0.0.1 unless told otherwise (README, "Operator page").
"""
from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

from aiohttp import web

from .bridge import format_stamp, parse_stamp

STATIC = Path(__file__).resolve().parent / "static"
FRAME_WAIT_S = 1.0
MAX_TARGET_ID = 256  # the tracker enforces its own (shorter) limit; this only keeps absurd bodies out


def make_app(bridge) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app["bridge"] = bridge
    app.router.add_get("/", _index)
    app.router.add_get("/frame.jpg", _frame)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/config", _config)
    app.router.add_post("/api/init", _init)
    app.router.add_post("/api/stop", _stop)
    app.router.add_static("/static/", STATIC, show_index=False)
    return app


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _frame(request: web.Request) -> web.Response:
    bridge = request.app["bridge"]
    view = request.query.get("view", "image")
    if view not in ("image", "heatmap"):
        return _error(400, f"view must be image or heatmap, not {view!r}")
    try:
        after = parse_stamp(request.query.get("after", "0"))
    except ValueError as err:
        return _error(400, str(err))
    loop = asyncio.get_running_loop()
    try:
        shown = await loop.run_in_executor(None, bridge.frame, view, after, FRAME_WAIT_S)
    except Exception as err:  # an image the converter refuses: the page says why
        return _error(422, f"cannot show the image: {type(err).__name__}: {err}")
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


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "message": message}, status=status)


async def _body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except Exception:
        raise web.HTTPBadRequest(text='{"success": false, "message": "the body must be JSON"}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"success": false, "message": "the body must be a JSON object"}',
                                 content_type="application/json")
    return body


def _target_id(body: dict) -> str:
    target_id = body.get("target_id", "")
    if not isinstance(target_id, str) or len(target_id) > MAX_TARGET_ID:
        raise ValueError("target_id must be a string of at most 256 characters")
    return target_id.strip()


async def _call(bridge, client, what: str, req) -> dict:
    """Call a service from this coroutine: the rclpy future is completed by the executor's thread."""
    if not client.service_is_ready():
        return {"success": False, "message": f"service {what} is not available: is the tracker node running in "
                                             f"this namespace and ROS_DOMAIN_ID?"}
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
        return {"success": False, "message": f"no answer from {what} within {timeout:g} s"}
    if f.exception() is not None:
        return {"success": False, "message": f"{what} failed: {f.exception()}"}
    res = f.result()
    return {"success": bool(res.success), "message": res.message,
            **({"target_id": res.target_id} if hasattr(res, "target_id") else {})}


async def _init(request: web.Request) -> web.Response:
    bridge = request.app["bridge"]
    body = await _body(request)
    try:
        target_id = _target_id(body)
        stamp = parse_stamp(body.get("stamp", ""))
        box = [float(v) for v in body.get("box", [])]
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise ValueError("box must be four finite numbers [x, y, width, height] in image pixels")
    except (ValueError, TypeError) as err:
        return _error(400, str(err))
    result = await _call(bridge, bridge.init_client, bridge.init_service, bridge.init_request(stamp, box, target_id))
    result["stamp"] = format_stamp(stamp)
    return web.json_response(result)


async def _stop(request: web.Request) -> web.Response:
    bridge = request.app["bridge"]
    body = await _body(request)
    try:
        target_id = _target_id(body)
    except ValueError as err:
        return _error(400, str(err))
    result = await _call(bridge, bridge.stop_client, bridge.stop_service, bridge.stop_request(target_id))
    if result["success"]:
        bridge.forget(target_id)
    return web.json_response(result)


async def serve(bridge, host: str, port: int, stop: asyncio.Event, ready=None) -> None:
    """Serve until `stop` is set; `ready(url)` is called once the socket listens (port 0: the port chosen)."""
    runner = web.AppRunner(make_app(bridge), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port  # the port chosen when 0 was asked
    shown_host = f"[{host}]" if ":" in host else host
    if ready is not None:
        ready(f"http://{shown_host}:{bound}/")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
