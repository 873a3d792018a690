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
    quit

Needs Debian's chromium and python3-websocket (run with /usr/bin/python3).
"""
import json
import os
import shutil
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
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)


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
            elif cmd == "new-authenticator":
                cdp.new_authenticator()
                print("ok", flush=True)
            elif cmd == "quit":
                break
    finally:
        cdp.close()


if __name__ == "__main__":
    main()
