// The operator page: shows the newest frame, freezes it on Pause (or when a box is started), turns a drag on the
// image into a box in image pixels and asks the server to call init_target with the stamp of the frame shown.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");

const ui = {
  paused: false,
  view: "image",
  rate: 15,
  shown: null,      // {bitmap, stamp ("sec.nanosec"), width, height}
  box: null,        // [x, y, w, h] in image pixels, drawn on `shown`
  drag: null,       // {x0, y0} while the pointer is down
  targets: [],
  busy: false,
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function setMessage(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
}

function setPaused(paused) {
  ui.paused = paused;
  const b = $("pause");
  b.textContent = paused ? "Live" : "Pause";
  b.classList.toggle("paused", paused);
  if (!paused) {
    ui.box = null;
    updateBoxInfo();
  }
  updateFrameInfo();
  draw();
}

function updateFrameInfo() {
  const s = ui.shown;
  $("frame-info").textContent = s
    ? `${ui.paused ? "PAUSED on" : "live"} frame ${s.stamp} (${s.width}x${s.height}, ${ui.view})`
    : "waiting for images...";
  $("frame-info").dataset.stamp = s ? s.stamp : "";
}

function updateBoxInfo() {
  const b = ui.box;
  $("box-info").textContent = b
    ? `box x ${b[0].toFixed(0)}, y ${b[1].toFixed(0)}, ${b[2].toFixed(0)} x ${b[3].toFixed(0)} px on frame ${ui.shown.stamp}`
    : "no box drawn";
  $("start").disabled = !b || ui.busy;
}

// ---------------------------------------------------------------------------------------------- frames
async function frameLoop() {
  while (true) {
    if (ui.paused) { await sleep(100); continue; }
    const t0 = performance.now();
    const after = ui.shown ? ui.shown.stamp : "0";
    let resp;
    try {
      resp = await fetch(`/frame.jpg?view=${ui.view}&after=${after}`, { cache: "no-store" });
    } catch (err) {
      $("frame-info").textContent = "the operator server does not answer";
      await sleep(1000);
      continue;
    }
    if (resp.status === 204) continue;  // no new frame within a second: ask again
    if (resp.status === 503) { await sleep(500); continue; }  // too many requests waiting: ask again soon
    if (!resp.ok) {
      const why = await resp.json().catch(() => ({ message: resp.statusText }));
      $("frame-info").textContent = `no image: ${why.message}`;
      await sleep(1000);
      continue;
    }
    const frame = {
      stamp: resp.headers.get("X-Stamp"),
      width: Number(resp.headers.get("X-Width")),
      height: Number(resp.headers.get("X-Height")),
      targets: JSON.parse(resp.headers.get("X-Targets") || "[]"),  // the boxes of this very frame
      bitmap: await createImageBitmap(await resp.blob()),
    };
    if (ui.paused) { frame.bitmap.close(); continue; }  // paused meanwhile: the frozen frame stays
    if (ui.shown) ui.shown.bitmap.close();
    ui.shown = frame;
    if (canvas.width !== frame.width || canvas.height !== frame.height) {
      canvas.width = frame.width;
      canvas.height = frame.height;
    }
    updateFrameInfo();
    draw();
    await sleep(Math.max(0, 1000 / ui.rate - (performance.now() - t0)));
  }
}

function draw() {
  const s = ui.shown;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!s) return;
  ctx.drawImage(s.bitmap, 0, 0);
  const lw = Math.max(2, canvas.width / 320);
  ctx.lineWidth = lw;
  ctx.font = `${Math.round(lw * 7)}px sans-serif`;
  // Boxes are drawn on the frame they were found on only: the tracker skips frames to stay current, and on a
  // moving camera the newest boxes drawn over a newer image would sit beside their objects.
  const boxes = s.targets.length ? s.targets : ui.targets.filter((t) => t.stamp === s.stamp);
  for (const t of boxes) {
    const [x, y, w, h] = t.box;
    const colour = t.state === "lost" ? "#ff4040" : "#40ff60";
    ctx.strokeStyle = colour;
    ctx.setLineDash([]);
    ctx.strokeRect(x, y, w, h);
    const label = `${t.id} ${t.confidence.toFixed(2)}${t.state === "lost" ? " LOST" : ""}`;
    const tw = ctx.measureText(label).width + 2 * lw;
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    ctx.fillRect(x, Math.max(0, y - lw * 9), tw, lw * 9);
    ctx.fillStyle = colour;
    ctx.fillText(label, x + lw, Math.max(lw * 7, y - lw * 2));
  }
  if (ui.box) {
    ctx.strokeStyle = "#ffd000";
    ctx.setLineDash([lw * 3, lw * 2]);
    ctx.strokeRect(...ui.box);
    ctx.setLineDash([]);
  }
}

// ---------------------------------------------------------------------------------------------- drawing a box
function imagePoint(ev) {
  const r = canvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) * canvas.width / r.width;
  const y = (ev.clientY - r.top) * canvas.height / r.height;
  return [Math.min(Math.max(x, 0), canvas.width), Math.min(Math.max(y, 0), canvas.height)];
}

canvas.addEventListener("pointerdown", (ev) => {
  if (!ui.shown || ev.button > 0) return;
  if (!ui.paused) setPaused(true);  // the box belongs to the frame on screen now: freeze it
  const [x0, y0] = imagePoint(ev);
  ui.drag = { x0, y0 };
  ui.box = null;
  canvas.setPointerCapture(ev.pointerId);
  ev.preventDefault();
});

canvas.addEventListener("pointermove", (ev) => {
  if (!ui.drag) return;
  const [x, y] = imagePoint(ev);
  const { x0, y0 } = ui.drag;
  ui.box = [Math.min(x0, x), Math.min(y0, y), Math.abs(x - x0), Math.abs(y - y0)];
  draw();
});

function endDrag(ev) {
  if (!ui.drag) return;
  ui.drag = null;
  if (ui.box && (ui.box[2] < 4 || ui.box[3] < 4)) {
    ui.box = null;
    setMessage("box too small: drag from one corner of the object to the other", "error");
  }
  updateBoxInfo();
  draw();
}
canvas.addEventListener("pointerup", endDrag);
canvas.addEventListener("pointercancel", endDrag);

// ---------------------------------------------------------------------------------------------- requests
async function post(path, body) {
  try {
    const resp = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    return await resp.json();
  } catch (err) {
    return { success: false, reason: "no_server", message: `the operator server does not answer (${err})` };
  }
}

$("start").addEventListener("click", async () => {
  if (!ui.box || !ui.shown) return;
  const id = $("target-id").value.trim();
  const stamp = ui.shown.stamp;
  ui.busy = true;
  updateBoxInfo();
  setMessage(`starting '${id || "default"}' on frame ${stamp}...`);
  const res = await post("/api/init", { target_id: id, stamp, box: ui.box.map((v) => Math.round(v * 10) / 10) });
  ui.busy = false;
  $("message").dataset.stamp = res.stamp || "";
  $("message").dataset.success = String(!!res.success);
  $("message").dataset.reason = res.reason || "";
  if (res.success) {
    setMessage(res.message, "ok");
    setPaused(false);  // watch it track
    nextId();
  } else if (res.reason === "unknown_stamp") {
    // Another try on this frame is refused the same way: the node no longer holds (or never got) it.
    setMessage(`not started: ${res.message}. Press Live, then pause on a newer frame.`, "error");
    updateBoxInfo();
  } else {
    setMessage(`not started: ${res.message}`, "error");
    updateBoxInfo();
  }
});

function nextId() {
  // suggest a fresh id for the next target: target1 -> target2
  const m = /^(.*?)(\d+)$/.exec($("target-id").value.trim());
  const taken = new Set(ui.targets.map((t) => t.id));
  if (!m) return;
  let n = Number(m[2]) + 1;
  while (taken.has(`${m[1]}${n}`)) n += 1;
  $("target-id").value = `${m[1]}${n}`;
}

async function stop(id) {
  const res = await post("/api/stop", { target_id: id });
  $("message").dataset.reason = res.reason || "";
  setMessage(res.success ? res.message : `stop failed: ${res.message}`, res.success ? "ok" : "error");
  refreshStatus();
}

$("stop-all").addEventListener("click", () => stop(""));
$("pause").addEventListener("click", () => setPaused(!ui.paused));
$("view-select").addEventListener("change", (ev) => {
  ui.view = ev.target.value;
  if (ui.paused) setPaused(false);
});
document.addEventListener("keydown", (ev) => {
  if (ev.code === "Space" && ev.target.tagName !== "INPUT" && ev.target.tagName !== "BUTTON") {
    setPaused(!ui.paused);
    ev.preventDefault();
  }
});

// ---------------------------------------------------------------------------------------------- status
function renderTargets() {
  // rows are updated in place (not rebuilt), so that a Stop button is never replaced under the pointer
  const body = $("targets").querySelector("tbody");
  const ids = new Set(ui.targets.map((t) => t.id));
  for (const tr of [...body.rows]) if (!ids.has(tr.dataset.id)) tr.remove();
  for (const t of ui.targets) {
    let tr = [...body.rows].find((r) => r.dataset.id === t.id);
    if (!tr) {
      tr = body.insertRow();
      tr.dataset.id = t.id;
      for (let i = 0; i < 4; i += 1) tr.insertCell();
      const b = document.createElement("button");
      b.textContent = "Stop";
      b.addEventListener("click", () => stop(t.id));
      tr.insertCell().appendChild(b);
    }
    [t.id, t.state, t.confidence.toFixed(2), String(t.lost_frames)].forEach((text, i) => {
      tr.cells[i].textContent = text;
    });
    tr.cells[1].className = t.state;
  }
}

function renderStatus(s) {
  const parts = [`${s.image_topic}: ${s.rate_here_hz} Hz here (${s.frames_here} frames)`];
  const d = s.tracker;
  const el = $("status");
  el.replaceChildren();
  if (!d || !d.received) {
    parts.push(`no /diagnostics from ${s.tracker_status.replace(": tracker", "")}: is the tracker running in ` +
               "this namespace and ROS_DOMAIN_ID?");
  } else {
    const nodeRate = Number(d.input_rate_hz);
    parts.push(`tracker: receives ${nodeRate.toFixed(1)} Hz (received ${d.received}, tracked ${d.processed}, ` +
               `skipped ${d.dropped} to stay current)`);
    parts.push(`buffer ${d.frame_buffer_span_s} s, ${d.frame_buffer_frames} frames, ` +
               `${(Number(d.frame_buffer_bytes) / 1048576).toFixed(0)} MiB`);
    if (d._message) parts.push(d._message);
    if (s.input_shortfall) {  // judged by the server once the stream has run long enough to compare rates
      const w = document.createElement("span");
      w.className = "warn";
      w.textContent = ` · the tracker gets ${nodeRate.toFixed(1)} of the ${s.rate_here_hz} frames/s seen here: ` +
        "lost in transport (README: camera input)";
      el.append(parts.join(" · "), w);
      return;
    }
  }
  el.append(parts.join(" · "));
}

async function refreshStatus() {
  try {
    const resp = await fetch("/api/status", { cache: "no-store" });
    if (resp.status === 401) {
      $("status").textContent = "token needed: open the address with ?token= that the page's process logged";
      return;
    }
    const s = await resp.json();
    ui.targets = s.targets;
    renderTargets();
    renderStatus(s);
    draw();
  } catch (err) {
    $("status").textContent = "the operator server does not answer";
  }
}

async function statusLoop() {
  while (true) {
    await refreshStatus();
    await sleep(300);
  }
}

(async function start() {
  try {
    const cfg = await (await fetch("/api/config")).json();
    ui.rate = cfg.stream_rate > 0 ? cfg.stream_rate : 15;
    document.title = `Tracker operator: ${cfg.image_topic}`;
  } catch (err) { /* defaults */ }
  statusLoop();
  frameLoop();
})();
