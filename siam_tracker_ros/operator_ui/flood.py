"""Measure whether waiting frame requests can starve the operator's live view:

    python -m siam_tracker_ros.operator_ui.flood 'http://127.0.0.1:8080/?token=...' --pid <the page's process>

`polls` clients (each from its own loopback address 127.0.0.2, .3, ..., as separate machines would be, so that the
per-client cap does not turn them away) each keep one heatmap long-poll waiting, asking again at once when it ends;
with no target tracked the node renders no heatmap, so every poll waits its full second. Meanwhile one viewer
(127.0.0.1) reads the camera view as the page does. Printed: the viewer's answer times before, during and after the
flood, the flood's answers by status, and the page process's RSS (with --pid).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit

import aiohttp


def _rss_mib(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _viewer(base: str, headers: dict, until: float, times: list, statuses: dict) -> None:
    """The page's frame loop: ask for the frame after the one shown, record each answer's time."""
    after = "0"
    async with aiohttp.ClientSession(headers=headers) as session:
        while time.monotonic() < until:
            t0 = time.monotonic()
            async with session.get(f"{base}frame.jpg", params={"view": "image", "after": after}) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    times.append((t0, time.monotonic() - t0))
                    after = resp.headers["X-Stamp"]
                else:
                    await asyncio.sleep(0.05)


async def _poller(base: str, headers: dict, source: str, stop: asyncio.Event, statuses: dict, held: list) -> None:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=1)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        while not stop.is_set():
            try:
                held[0] += 1
                async with session.get(f"{base}frame.jpg", params={"view": "heatmap", "after": "0.1"}) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
            except aiohttp.ClientError as err:
                statuses[type(err).__name__] = statuses.get(type(err).__name__, 0) + 1
                await asyncio.sleep(0.1)
            finally:
                held[0] -= 1


def _summary(times: list, start: float, end: float) -> dict:
    answer = [dt for t0, dt in times if start <= t0 < end]
    if not answer:
        return {"frames": 0, "median_s": None, "p95_s": None, "max_s": None}
    answer.sort()
    return {"frames": len(answer), "median_s": round(statistics.median(answer), 4),
            "p95_s": round(answer[int(0.95 * (len(answer) - 1))], 4), "max_s": round(answer[-1], 4)}


async def flood(url: str, polls: int = 200, seconds: float = 25.0, calm: float = 3.0, pid: int | None = None) -> dict:
    """Viewer alone for `calm` s, with `polls` held heatmap long-polls for `seconds`, alone again for `calm` s."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}/"
    token = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("token")
    headers = {"Authorization": f"token {token}"} if token else {}
    t_start = time.monotonic()
    t_flood, t_calm = t_start + calm, t_start + calm + seconds
    t_end = t_calm + calm
    times, viewer_statuses, flood_statuses, held, rss = [], {}, {}, [0], []
    # the viewer runs on a loop of its own, so that starting and ending 200 clients here does not delay it
    viewer = threading.Thread(target=lambda: asyncio.run(_viewer(base, headers, t_end, times, viewer_statuses)),
                              name="viewer", daemon=True)
    viewer.start()
    stop = asyncio.Event()

    async def sample_rss():
        while time.monotonic() < t_end:
            rss.append((time.monotonic(), _rss_mib(pid), held[0]))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    await asyncio.sleep(max(0.0, t_flood - time.monotonic()))
    pollers = [asyncio.create_task(_poller(base, headers, f"127.0.0.{2 + i % 250}", stop, flood_statuses, held))
               for i in range(polls)]
    await asyncio.sleep(max(0.0, t_calm - time.monotonic()))
    stop.set()
    for task in pollers:
        task.cancel()
    await asyncio.gather(*pollers, return_exceptions=True)
    await sampler
    await asyncio.get_running_loop().run_in_executor(None, viewer.join)
    rss_values = [r for _, r, _ in rss if r is not None]
    return {
        "viewer_before": _summary(times, t_start, t_flood),
        "viewer_during": _summary(times, t_flood, t_calm),
        "viewer_after": _summary(times, t_calm, t_end),
        "viewer_first_after_s": round(min((t0 + dt for t0, dt in times if t0 >= t_calm), default=float("nan"))
                                      - t_calm, 4),
        "viewer_statuses": viewer_statuses,
        "flood_statuses": {str(k): v for k, v in flood_statuses.items()},
        "flood_most_held": max((h for _, _, h in rss), default=0),
        "rss_mib": {"before": rss_values[0] if rss_values else None, "max": max(rss_values, default=None),
                    "after": rss_values[-1] if rss_values else None},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="the page's address as its process logged it (with ?token=)")
    p.add_argument("--polls", type=int, default=200)
    p.add_argument("--seconds", type=float, default=25.0)
    p.add_argument("--calm", type=float, default=3.0, help="seconds of the viewer alone before and after")
    p.add_argument("--pid", type=int, default=None, help="the page's process, for its RSS")
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(flood(args.url, args.polls, args.seconds, args.calm, args.pid)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
