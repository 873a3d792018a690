#!/usr/bin/python3
"""Drives a real Firefox (WebDriver BiDi) or WebKit (WebKitWebDriver, W3C
WebDriver classic) for tests/profile_engines.rs: the same line protocol as
tests/webauthn_browser.py (which drives Chromium), without the WebAuthn
parts. Usage: engine_browser.py firefox|webkit. Prints "ready" once the
browser is up (or "failed REASON" and exits), then reads commands on stdin,
one per line, one answer line each on stdout:

    goto URL            -> "page <json [url, title]>" once the new document
                           has loaded (after any redirects)
    text ID             -> "text <json string>": innerText of element ID
    eval JS             -> "value <json>": the expression's value (promises
                           awaited), or {"error": ...}
    act JS              -> "page <json [url, title]>": runs JS (a click, a
                           form submit) and waits for the next document;
                           ["error", ...] or ["timeout", ""] otherwise
    screenshot W H PATH -> "ok SCROLLWIDTH INNERWIDTH": a PNG at a W x H
                           viewport (Firefox: the whole page, without the
                           scroll bar; WebKit: the viewport), and how wide
                           the page is there
    quit

Firefox: `firefox-esr --headless` with its WebDriver BiDi WebSocket (ESR
has no CDP). WebKit: WebKitWebDriver starting WebKitGTK's MiniBrowser in
automation mode; MiniBrowser has no headless mode, so it gets a private
Xvfb display. Needs Debian's firefox-esr, webkit2gtk-driver, xvfb and
python3-websocket (run with /usr/bin/python3); nothing else.
"""
import base64
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import websocket

TIMEOUT = 30

# Wraps an expression so that its value (promises awaited) comes back as a
# JSON string, and an exception as {"error": ...}.
WRAP = ("(async () => {{ try {{ const v = await ({expr}); return JSON.stringify(v === undefined ? null : v); }}"
        " catch (e) {{ return JSON.stringify({{error: String(e)}}); }} }})()")


def error(message):
    return json.dumps({"error": message})


class Engine:
    """What both engines share: loads are seen by a mark the old document
    carries and the new one does not."""

    def evaluate(self, expr):  # -> JSON text
        raise NotImplementedError

    def _mark(self):
        self.evaluate("window.__p2fa_mark = 1")

    def _loaded(self):
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            try:
                v = json.loads(self.evaluate(
                    "window.__p2fa_mark === undefined && document.readyState === 'complete'"
                    " ? [location.href, document.title] : ''"))
                if isinstance(v, list):
                    return json.dumps(v)
            except Exception:  # the old document went away mid-call
                pass
            time.sleep(0.05)
        return json.dumps(["timeout", ""])

    def act(self, expr):
        self._mark()
        out = json.loads(self.evaluate(expr))
        if isinstance(out, dict) and "error" in out:
            return json.dumps(["error", out["error"]])
        return self._loaded()

    def text(self, ident):
        return self.evaluate(f"(document.getElementById({json.dumps(ident)})||{{}}).innerText||''")

    def widths(self):
        return json.loads(self.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"))


class Firefox(Engine):
    def __init__(self):
        binary = shutil.which("firefox-esr") or shutil.which("firefox")
        if not binary:
            raise RuntimeError("no firefox-esr (scripts/deps installs it)")
        self.dir = tempfile.mkdtemp(prefix="p2fa-firefox.")
        with open(os.path.join(self.dir, "user.js"), "w") as f:
            # A quiet profile: no first-run pages, updates or telemetry.
            for pref, value in [("browser.shell.checkDefaultBrowser", "false"),
                                ("browser.startup.homepage_override.mstone", '"ignore"'),
                                ("app.update.disabledForTesting", "true"),
                                ("datareporting.policy.dataSubmissionEnabled", "false"),
                                ("toolkit.telemetry.reportingpolicy.firstRun", "false")]:
                f.write(f'user_pref("{pref}", {value});\n')
        self.proc, self.ws = None, None
        try:
            self.start(binary)
        except BaseException:
            self.close()
            raise

    def start(self, binary):
        env = dict(os.environ, MOZ_HEADLESS="1")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-remote", "--remote-debugging-port=0", "--profile", self.dir,
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        url, seen = None, []
        deadline = time.time() + 60
        # stderr is read on a thread so that a silent Firefox cannot hang us.
        lines = []
        threading.Thread(target=lambda: [lines.append(l) for l in self.proc.stderr], daemon=True).start()
        while url is None:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("firefox did not start: " + " | ".join(l.strip() for l in lines[-5:]))
            for l in lines[len(seen):]:
                seen.append(l)
                if "WebDriver BiDi listening on " in l:
                    url = l.split("listening on ", 1)[1].strip()
            time.sleep(0.05)
        # No Origin header: Firefox refuses WebSocket upgrades with one.
        self.ws = websocket.create_connection(url + "/session", timeout=TIMEOUT, suppress_origin=True)
        self.next_id = 0
        self.call("session.new", {"capabilities": {}})
        self.context = self.call("browsingContext.getTree", {})["contexts"][0]["context"]

    def call(self, method, params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            r = json.loads(self.ws.recv())
            if r.get("id") == self.next_id:
                if r.get("type") == "error":
                    raise RuntimeError(f"{method}: {r.get('error')}: {r.get('message')}")
                return r["result"]

    def evaluate(self, expr):
        r = self.call("script.evaluate", {"expression": WRAP.format(expr=expr), "awaitPromise": True,
                                          "target": {"context": self.context}, "resultOwnership": "none"})
        if r.get("type") == "exception":
            return error(r["exceptionDetails"].get("text", "exception"))
        return r["result"].get("value", "null")

    def goto(self, url):
        self.call("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})
        return json.dumps(json.loads(self.evaluate("[location.href, document.title]")))

    def screenshot(self, width, height, path):
        self.call("browsingContext.setViewport", {"context": self.context,
                                                  "viewport": {"width": width, "height": height}})
        try:
            widths = self.widths()
            shot = self.call("browsingContext.captureScreenshot", {"context": self.context, "origin": "document"})
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            return widths
        finally:
            self.call("browsingContext.setViewport", {"context": self.context, "viewport": None})

    def close(self):
        try:
            if self.ws:
                self.ws.close()
        finally:
            if self.proc:
                self.proc.kill()
                self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebKit(Engine):
    def __init__(self):
        driver = shutil.which("WebKitWebDriver")
        minibrowser = sorted(glob.glob("/usr/lib/*/webkit2gtk-4.*/MiniBrowser"))
        xvfb = shutil.which("Xvfb")
        if not (driver and minibrowser and xvfb):
            raise RuntimeError("no WebKitWebDriver, MiniBrowser or Xvfb (scripts/deps installs"
                               " webkit2gtk-driver and xvfb)")
        self.procs, self.session = [], None
        self.dir = tempfile.mkdtemp(prefix="p2fa-webkit.")
        try:
            self.start(driver, minibrowser[-1], xvfb)
        except BaseException:
            self.close()
            raise

    def start(self, driver, minibrowser, xvfb):
        # A display of its own: -displayfd picks a free number (no race
        # with other tests the way `xvfb-run -a` has).
        r, w = os.pipe()
        self.procs.append(subprocess.Popen(
            [xvfb, "-displayfd", str(w), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        os.close(w)
        with os.fdopen(r) as f:
            display = f.readline().strip()
        if not display:
            raise RuntimeError("Xvfb did not start")
        # MiniBrowser's toolbar keeps its window at least 447 px wide; a
        # GTK style sheet of our own shrinks the toolbar (not the page:
        # WebKit draws the page's controls itself) so that a 375 px phone
        # viewport fits. XDG dirs of its own also keep it off $HOME.
        os.makedirs(os.path.join(self.dir, "config", "gtk-3.0"))
        with open(os.path.join(self.dir, "config", "gtk-3.0", "gtk.css"), "w") as f:
            f.write("* { min-width: 0; min-height: 0; padding: 0; margin: 0; font-size: 4px; }\n")
        env = dict(os.environ, DISPLAY=":" + display, XDG_CONFIG_HOME=os.path.join(self.dir, "config"),
                   XDG_CACHE_HOME=os.path.join(self.dir, "cache"), XDG_DATA_HOME=os.path.join(self.dir, "data"))
        # (WebKit's defaults work on Xvfb; WEBKIT_DISABLE_DMABUF_RENDERER or
        # WEBKIT_DISABLE_COMPOSITING_MODE make its screenshots time out.)
        env.pop("WAYLAND_DISPLAY", None)
        for attempt in range(5):
            port = free_port()
            p = subprocess.Popen([driver, f"--port={port}"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.base = f"http://127.0.0.1:{port}"
            deadline = time.time() + TIMEOUT
            while time.time() < deadline and p.poll() is None:
                try:
                    self.http("GET", "/status")
                    break
                except (OSError, RuntimeError):
                    time.sleep(0.05)
            if p.poll() is None:
                self.procs.append(p)
                break
        else:
            raise RuntimeError("WebKitWebDriver did not start")
        caps = {"capabilities": {"alwaysMatch": {"webkitgtk:browserOptions": {
            "binary": minibrowser, "args": ["--automation"]}}}}
        self.session = self.http("POST", "/session", caps)["sessionId"]

    def http(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT * 2) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            v = json.loads(e.read() or b'{"value": {}}').get("value") or {}
            raise RuntimeError(f"{method} {path}: {v.get('error')}: {v.get('message')}")

    def s(self, method, path, body=None):
        return self.http(method, f"/session/{self.session}{path}", body)

    def evaluate(self, expr):
        try:
            return self.s("POST", "/execute/async", {
                "script": f"const done = arguments[arguments.length - 1]; {WRAP.format(expr=expr)}.then(done);",
                "args": []})
        except RuntimeError as e:
            return error(str(e))

    def goto(self, url):
        self.s("POST", "/url", {"url": url})
        return json.dumps(json.loads(self.evaluate("[location.href, document.title]")))

    def viewport(self):
        # Read two frames on, so a resize the page has been told of is drawn.
        return tuple(json.loads(self.evaluate(
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame("
            "() => r([window.innerWidth, window.innerHeight]))))")))

    def resize(self, w, h):
        """Sets the window to w x h; the viewport once the page has it.

        The window manager answers POST /window/rect before the page sees
        the new size: read at once, innerWidth can still be the old one
        (a 1280 px viewport after asking for 375 px). So wait until the
        viewport has changed and reads the same twice; if it does not
        change (the window already had that size), half a second."""
        before = self.viewport()
        self.s("POST", "/window/rect", {"width": w, "height": h})
        start = time.time()
        last = None
        while time.time() < start + 5:
            now = self.viewport()
            if now == last and (now != before or time.time() > start + 0.5):
                return now
            last = now
            time.sleep(0.05)
        return last

    def screenshot(self, width, height, path):
        # The window has browser chrome around the page: size it until
        # the viewport is W x H. The chrome is never negative, so the
        # window is never asked to be smaller than the viewport wanted
        # (WebKitWebDriver refuses a width below 0 as "Invalid width").
        w, h = width, height
        for _ in range(4):
            iw, ih = self.resize(w, h)
            if (iw, ih) == (width, height):
                break
            w, h = max(width, w + width - iw), max(height, h + height - ih)
        widths = self.widths()
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))
        return widths

    def close(self):
        if self.session:
            try:
                self.s("DELETE", "")
            except Exception:
                pass
        for p in reversed(self.procs):
            p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    try:
        engine = {"firefox": Firefox, "webkit": WebKit}[sys.argv[1]]()
    except Exception as e:  # the test fails with this line
        print(f"failed {sys.argv[1:]}: {e}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            try:
                answer(engine, cmd, arg)
            except Exception as e:  # the test shows this line
                print("error " + json.dumps(f"{cmd}: {e}"), flush=True)
            if cmd == "quit":
                break
    finally:
        engine.close()


def answer(engine, cmd, arg):
    if cmd == "goto":
        print("page " + engine.goto(arg), flush=True)
    elif cmd == "text":
        print("text " + engine.text(arg), flush=True)
    elif cmd == "eval":
        print("value " + engine.evaluate(arg), flush=True)
    elif cmd == "act":
        print("page " + engine.act(arg), flush=True)
    elif cmd == "screenshot":
        w, h, path = arg.split(" ", 2)
        sw, iw = engine.screenshot(int(w), int(h), path)
        print(f"ok {sw} {iw}", flush=True)
    elif cmd != "quit":
        print("error " + json.dumps(f"unknown command {cmd}"), flush=True)


if __name__ == "__main__":
    main()
