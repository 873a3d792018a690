#!/usr/bin/python3
"""Drives a real headless Chromium with a virtual WebAuthn authenticator
(DevTools WebAuthn domain), for the 2fad tests. Commands on stdin, one per
line; one answer line each on stdout:

    open URL            -> "done <page status>" or "failed <page status>"
    capture URL         -> "body <json>": runs the ceremony but keeps what the
                           page would post (the test then posts variants)
    new-authenticator   -> "ok" (forgets the old authenticator and its keys)
    text ID             -> "text <json string>": the rendered text (innerText,
                           so hidden parts are left out) of the current page's
                           element ID
    goto URL            -> "page <json [url, title]>" once the new document
                           has loaded (after any redirects)
    eval JS             -> "value <json>": the expression's value (promises
                           awaited), or {"error": ...}
    act JS              -> "page <json [url, title]>": runs JS (a click, a
                           form submit) and waits for the next document
    screenshot W H PATH -> "ok SCROLLWIDTH INNERWIDTH": a full-page PNG at a
                           W x H viewport, and how wide the page is there
    download JS DIR     -> "file <json path>": runs JS (a click on a download
                           link) and waits for the file in DIR
    cookies             -> "cookies <json [{name, value, ...}]>"
    key NAME            -> "ok": presses a key (Tab, Enter, Space) as the
                           keyboard does
    keynav NAME         -> "page <json [url, title]>": presses a key and
                           waits for the next document
    quit

Needs Debian's chromium and python3-websocket (run with /usr/bin/python3).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Cdp:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="p2fa-chromium.")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-port=0",
             f"--user-data-dir={self.dir}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its own process group: close() ends the helpers (zygote,
            # renderers) too, which otherwise keep writing into self.dir.
            start_new_session=True)
        port_file = os.path.join(self.dir, "DevToolsActivePort")
        deadline = time.time() + 30
        while not os.path.exists(port_file) or len(open(port_file).read().split()) < 2:
            if time.time() > deadline:
                raise RuntimeError("chromium did not start")
            time.sleep(0.05)
        port, path = open(port_file).read().split()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=30)
        self.next_id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("WebAuthn.enable", {"enableUI": False}, session=True)
        self.authenticator = None
        self.new_authenticator()

    def call(self, method, params=None, session=False):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            r = json.loads(self.ws.recv())
            if r.get("id") == self.next_id:
                if "error" in r:
                    raise RuntimeError(f"{method}: {r['error']}")
                return r.get("result", {})

    def new_authenticator(self):
        if self.authenticator:
            self.call("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator}, session=True)
        self.authenticator = self.call("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True,
            "automaticPresenceSimulation": True}}, session=True)["authenticatorId"]

    def open(self, url):
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            r = self.call("Runtime.evaluate", {"expression":
                "JSON.stringify([document.title, (document.getElementById('status')||{}).textContent||''])",
                "returnByValue": True}, session=True)
            title, status = json.loads(r["result"]["value"])
            if title == "pam-2fa: done":
                return f"done {status}"
            if title == "pam-2fa: failed":
                return f"failed {status}"
            time.sleep(0.1)
        return "failed timeout"

    def capture(self, url):
        """Runs the ceremony with fetch() to /api/finish/ intercepted: the
        body is kept in the page and nothing reaches 2fad."""
        script = """
        const realFetch = window.fetch;
        window.fetch = (u, o) => {
          if (String(u).includes('/api/finish/')) {
            window.__captured = o.body;
            return Promise.resolve(new Response('{"ok":true}', {status: 200}));
          }
          return realFetch(u, o);
        };"""
        ident = self.call("Page.addScriptToEvaluateOnNewDocument", {"source": script}, session=True)["identifier"]
        try:
            result = self.open(url)
            if not result.startswith("done"):
                return json.dumps({"error": result})
            r = self.call("Runtime.evaluate", {"expression": "window.__captured", "returnByValue": True}, session=True)
            return r["result"]["value"]
        finally:
            self.call("Page.removeScriptToEvaluateOnNewDocument", {"identifier": ident}, session=True)

    def text(self, ident):
        r = self.call("Runtime.evaluate", {"expression":
            f"JSON.stringify((document.getElementById({json.dumps(ident)})||{{}}).innerText||'')",
            "returnByValue": True}, session=True)
        return r["result"]["value"]

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, session=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            return json.dumps({"error": (d.get("exception") or {}).get("description") or d.get("text")})
        return json.dumps(r["result"].get("value"))

    def _mark(self):
        self.call("Runtime.evaluate", {"expression": "window.__p2fa_mark = 1"}, session=True)

    def _loaded(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                r = self.call("Runtime.evaluate", {"expression":
                    "window.__p2fa_mark === undefined && document.readyState === 'complete'"
                    " ? JSON.stringify([location.href, document.title]) : ''",
                    "returnByValue": True}, session=True)
                v = r.get("result", {}).get("value")
                if v:
                    return v
            except RuntimeError:
                pass  # the old document went away mid-call
            time.sleep(0.05)
        return json.dumps(["timeout", ""])

    def goto(self, url):
        self._mark()
        self.call("Page.navigate", {"url": url}, session=True)
        return self._loaded()

    def act(self, expr):
        self._mark()
        out = json.loads(self.evaluate(expr))
        if isinstance(out, dict) and "error" in out:
            return json.dumps(["error", out["error"]])
        return self._loaded()

    def screenshot(self, width, height, path):
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                  "deviceScaleFactor": 1, "mobile": width < 600}, session=True)
        try:
            widths = json.loads(self.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"))
            shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                             session=True)
            import base64
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            return widths
        finally:
            self.call("Emulation.clearDeviceMetricsOverride", {}, session=True)

    def download(self, expr, directory):
        self.call("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": directory})
        before = set(os.listdir(directory))
        self.evaluate(expr)
        deadline = time.time() + 30
        while time.time() < deadline:
            new = [f for f in set(os.listdir(directory)) - before if not f.endswith(".crdownload")]
            if new:
                return json.dumps(os.path.join(directory, new[0]))
            time.sleep(0.05)
        return json.dumps(None)

    KEYS = {"Tab": (9, None), "Enter": (13, "\r"), "Space": (32, " ")}

    def key(self, name):
        code, text = self.KEYS[name]
        down = {"type": "keyDown" if text else "rawKeyDown", "key": " " if name == "Space" else name,
                "code": name, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}
        if text:
            down["text"] = text
            down["unmodifiedText"] = text
        self.call("Input.dispatchKeyEvent", down, session=True)
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", "key": down["key"], "code": name,
                  "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}, session=True)

    def keynav(self, name):
        self._mark()
        self.key(name)
        return self._loaded()

    def cookies(self):
        return json.dumps(self.call("Network.getCookies", {}, session=True).get("cookies", []))

    def close(self):
        try:
            self.ws.close()
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            for _ in range(20):
                shutil.rmtree(self.dir, ignore_errors=True)
                if not os.path.exists(self.dir):
                    break
                time.sleep(0.05)


def main():
    cdp = Cdp()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "open":
                print(cdp.open(arg), flush=True)
            elif cmd == "capture":
                print("body " + cdp.capture(arg), flush=True)
            elif cmd == "text":
                print("text " + cdp.text(arg), flush=True)
            elif cmd == "goto":
                print("page " + cdp.goto(arg), flush=True)
            elif cmd == "eval":
                print("value " + cdp.evaluate(arg), flush=True)
            elif cmd == "act":
                print("page " + cdp.act(arg), flush=True)
            elif cmd == "screenshot":
                w, h, path = arg.split(" ", 2)
                sw, iw = cdp.screenshot(int(w), int(h), path)
                print(f"ok {sw} {iw}", flush=True)
            elif cmd == "download":
                expr, _, directory = arg.rpartition(" ")
                print("file " + cdp.download(expr, directory), flush=True)
            elif cmd == "key":
                cdp.key(arg)
                print("ok", flush=True)
            elif cmd == "keynav":
                print("page " + cdp.keynav(arg), flush=True)
            elif cmd == "cookies":
                print("cookies " + cdp.cookies(), flush=True)
            elif cmd == "new-authenticator":
                cdp.new_authenticator()
                print("ok", flush=True)
            elif cmd == "quit":
                break
    finally:
        cdp.close()


if __name__ == "__main__":
    main()
