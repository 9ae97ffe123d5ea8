"""Drives a report in headless Chromium through the DevTools protocol, as a reader would
with a mouse, and checks what the page shows against the Parquet files.

    python3 drive_report.py REPORT.html RESULTS_DIR WORK_DIR

On the first Figure-6 panel: hovers a point of a mean curve and reads the tooltip's run,
epoch, iteration, training and test error against the mean of that depth's runs in
RESULTS_DIR; shows each seed's curves and hovers one (its own numbers); hides a depth by
its legend entry and shows it again; switches the axis to log; moves the smoothing
slider; downloads the figure as SVG and as PNG. Fails on any console error or uncaught
exception. Prints one line per check and `load_ms=N`: navigation to the load event.

The protocol client is the standard library's (a WebSocket is a handshake and frames),
so the test needs nothing but Chromium and pyarrow.
"""

import base64
import glob
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

import pyarrow.parquet as pq

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,1600", "--remote-debugging-port=0",
]


class WebSocket:
    """A client WebSocket over a plain TCP socket: text frames out (masked, as a client
    must), whole messages in."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("DevTools closed the connection during the handshake")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:200]!r}")

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def send(self, text):
        data = text.encode()
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def receive(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            if b0 & 0x0F == 0x8:
                raise RuntimeError("DevTools closed the WebSocket")
            if b0 & 0x0F in (0x9, 0xA):  # ping, pong: not part of a message
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class Page:
    """One tab, attached through the browser's endpoint with a flat session."""

    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session = attached["sessionId"]

    def call(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.receive())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.receive()))
        raise RuntimeError(f"no {method} within {timeout} s")

    def js(self, expression):
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                 "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def mouse(self, kind, x, y):
        params = {"type": kind, "x": x, "y": y, "button": "left" if kind != "mouseMoved" else "none"}
        if kind != "mouseMoved":
            params["clickCount"] = 1
        self.call("Input.dispatchMouseEvent", params)

    def click(self, x, y):
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y)
        self.mouse("mouseReleased", x, y)

    def problems(self):
        """Console errors and warnings, uncaught exceptions, and logged errors so far."""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')} "
                           f"{p['exceptionDetails'].get('exception', {}).get('description')}")
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
            elif method == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry'].get('text')}")
        return out


# Page-side helpers: where things are on screen, in CSS pixels of the viewport.
HELPERS = r"""
window.__fig = () => document.querySelectorAll('figure.interactive')[0];
window.__centre = (el) => { const r = el.getBoundingClientRect();
  return {x: r.left + r.width / 2, y: r.top + r.height / 2}; };
window.__point = (line, k) => { const svg = line.ownerSVGElement, r = svg.getBoundingClientRect(),
  vb = svg.viewBox.baseVal, [x, y] = line.getAttribute('points').trim().split(/\s+/)[k].split(',').map(Number);
  return {x: r.left + x * r.width / vb.width, y: r.top + y * r.height / vb.height}; };
window.__tooltip = () => { const t = __fig().querySelector('.figure-tooltip');
  return {hidden: t.hidden, run: (t.querySelector('.tooltip-run') || {}).textContent,
    where: (t.querySelector('.tooltip-x') || {}).textContent,
    values: [...t.querySelectorAll('.tooltip-value')].map(v => v.textContent)}; };
true
"""


def expect(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}")


def metrics(results):
    rows = []
    for path in glob.glob(os.path.join(results, "*", "metrics.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    if not rows:
        raise AssertionError(f"no metrics.parquet under {results}")
    return rows


def tooltip_numbers(tip):
    """{'train error': 12.34, 'test error': 15.0} from lines like 'train error: 12.34 %'."""
    out = {}
    for line in tip["values"]:
        m = re.match(r"(train error|test error): ([0-9.]+) %", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def check_against_parquet(tip, rows, what):
    m = re.match(r"(plain|residual)-(\d+)(?: seed (\d+))?", tip["run"] or "")
    e = re.match(r"epoch (\d+)(?: · iteration ([\d,]+))?", tip["where"] or "")
    if not (m and e):
        raise AssertionError(f"{what}: tooltip not understood: {tip}")
    family, depth, seed = m.group(1), int(m.group(2)), m.group(3)
    epoch = int(e.group(1))
    mine = [r for r in rows if r["family"] == family and r["depth"] == depth and r["epoch"] == epoch
            and (seed is None or r["seed"] == int(seed))]
    if not mine:
        raise AssertionError(f"{what}: no Parquet row for {tip}")
    shown = tooltip_numbers(tip)
    for kind, column in (("train error", "train_error"), ("test error", "test_error")):
        want = round(100 * sum(r[column] for r in mine) / len(mine), 2)
        expect(kind in shown and abs(shown[kind] - want) < 0.006,
               f"{what}: {tip['run']} epoch {epoch} {kind} {shown.get(kind)} % = Parquet {want:.2f} % "
               f"({len(mine)} run{'s' if len(mine) > 1 else ''})")
    if e.group(2):
        iteration = int(e.group(2).replace(",", ""))
        expect(all(r["iteration"] == iteration for r in mine),
               f"{what}: iteration {iteration} = Parquet")


def main():
    report, results, work = sys.argv[1:4]
    rows = metrics(results)
    profile, downloads = os.path.join(work, "profile"), os.path.join(work, "downloads")
    os.makedirs(downloads, exist_ok=True)
    browser = subprocess.Popen(["chromium", *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not (os.path.exists(port_file) and len(open(port_file).read().split()) >= 2):
            if time.time() > deadline or browser.poll() is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = open(port_file).read().split()[:2]
        page = Page(WebSocket(int(port), path))
        for domain in ("Page", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Browser.setDownloadBehavior",
                  {"behavior": "allow", "downloadPath": downloads, "eventsEnabled": True},
                  session=False)

        start = time.perf_counter()
        page.call("Page.navigate", {"url": "file://" + os.path.abspath(report)})
        page.wait_for("Page.loadEventFired")
        print(f"load_ms={1000 * (time.perf_counter() - start):.0f}")
        page.js(HELPERS)
        expect(page.js("document.querySelectorAll('script.figure-data').length") ==
               page.js("window.degradeFigures.length") > 0, "every figure with data is interactive")
        page.js("__fig().scrollIntoView()")

        # Hover the second point of the first mean training curve.
        line = "__fig().querySelector('polyline[data-kind=\"train error\"]:not([data-seed])')"
        group = page.js(f"{line}.dataset.group")
        p = page.js(f"__point({line}, 1)")
        page.mouse("mouseMoved", p["x"], p["y"])
        tip = page.js("__tooltip()")
        expect(not tip["hidden"] and tip["run"].startswith(group), f"hovering {group} shows {tip}")
        check_against_parquet(tip, rows, "mean curve")

        # Each seed's curves, and one seed's own numbers.
        box = page.js("__centre(__fig().querySelector('input.each-seed'))")
        page.click(box["x"], box["y"])
        seed_line = "__fig().querySelector('polyline[data-seed][data-kind=\"train error\"]')"
        expect(page.js(f"!!{seed_line}"), "each seed's curves are drawn on demand")
        p = page.js(f"__point({seed_line}, 0)")
        page.mouse("mouseMoved", p["x"], p["y"])
        tip = page.js("__tooltip()")
        expect(" seed " in (tip["run"] or ""), f"hovering a seed's curve shows {tip}")
        check_against_parquet(tip, rows, "one seed")
        page.click(box["x"], box["y"])  # back to the means alone

        # Hide the group by its legend entry, then show it again.
        entry = f"__fig().querySelector('.legend-entry[data-group=\"{group}\"]')"
        lines_of = f"__fig().querySelectorAll('polyline[data-group=\"{group}\"]').length"
        before = page.js(lines_of)
        c = page.js(f"__centre({entry})")
        page.click(c["x"], c["y"])
        expect(before > 0 and page.js(lines_of) == 0 and page.js(f"{entry}.getAttribute('aria-pressed')") == "false",
               f"a click on the legend hides {group} ({before} lines -> 0)")
        page.click(c["x"], c["y"])
        expect(page.js(lines_of) == before, f"a second click shows {group} again")

        # The log axis: ticks become powers of ten (or 1-2-5 values on a short axis).
        box = page.js("__centre(__fig().querySelector('input.log-axis'))")
        was_log = page.js("__fig().querySelector('svg').dataset.log") == "true"
        page.click(box["x"], box["y"])
        now_log = page.js("__fig().querySelector('svg').dataset.log") == "true"
        ticks = page.js("[...__fig().querySelectorAll('text.y-tick')].map(t => t.textContent)")
        expect(now_log != was_log and len(ticks) >= 2, f"the axis switched to {'log' if now_log else 'linear'}: ticks {ticks}")
        label = page.js("[...__fig().querySelectorAll('svg text')].map(t => t.textContent).join('|')")
        expect(("log scale" in label) == now_log, "the axis label says which scale")

        # Smoothing: the drawn curve changes, the tooltip's stored value does not.
        before = page.js(f"{line}.getAttribute('points')")
        page.js("(() => { const s = __fig().querySelector('input.smoothing'); s.value = '0.8';"
                " s.dispatchEvent(new Event('input')); })()")
        after = page.js(f"{line}.getAttribute('points')")
        expect(before != after, "the smoothing slider redraws the curves")

        # Downloads: the figure as SVG and as PNG.
        for kind, magic in (("svg", b"<svg"), ("png", b"\x89PNG")):
            b = page.js(f"__centre(__fig().querySelector('button.download-{kind}'))")
            page.click(b["x"], b["y"])
            deadline = time.time() + 20
            files = []
            while time.time() < deadline:
                files = [f for f in glob.glob(os.path.join(downloads, f"*.{kind}"))]
                if files and open(files[0], "rb").read(4):
                    break
                page.js("new Promise(r => setTimeout(r, 100))")
            expect(files and open(files[0], "rb").read().startswith(magic),
                   f"the {kind.upper()} download is a {kind.upper()} file ({files})")

        problems = page.problems()
        expect(not problems, f"no console errors ({problems})")
    finally:
        browser.kill()
        browser.wait()


if __name__ == "__main__":
    main()
