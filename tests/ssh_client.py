#!/usr/bin/python3
"""Keyboard-interactive SSH login for the pam-2fa tests and demo (paramiko).

    ssh_client.py HOST PORT USER [--answer SUBSTRING=TEXT]... [--answer-file SUBSTRING=PATH]...
                  [--command CMD] [--timeout SECONDS]

Each prompt the server sends is matched (case-insensitive substring) against
the --answer rules in order; --answer-file waits until PATH exists and
answers with its first line, so a test can supply a code that only exists
after the prompt appeared (an e-mailed code). Prompts and instructions are
printed to stderr as "prompt: ..." / "info: ...". On success the command's
output goes to stdout and the exit status is the command's; failed
authentication exits 5, anything else 6.
"""
import argparse
import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import sys
import time

import paramiko


def totp(key_b32, period=30, digits=6):
    """RFC 6238 with SHA-1, for the inline-enrollment test."""
    key = base64.b32decode(key_b32 + "=" * (-len(key_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(time.time()) // period), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    n = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return str(n % 10 ** digits).zfill(digits)


def parse_rules(values):
    rules = []
    for v in values or []:
        key, sep, text = v.partition("=")
        if not sep:
            sys.exit(f"bad rule {v!r}: want SUBSTRING=TEXT")
        rules.append((key.lower(), text))
    return rules


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("user")
    ap.add_argument("--answer", action="append")
    ap.add_argument("--answer-file", action="append")
    ap.add_argument("--answer-totp", action="append",
                    help="SUBSTRING: answer with the TOTP code of the key shown as "
                         "'key by hand: KEY' (inline enrollment)")
    ap.add_argument("--url-file", help="write the first http(s) URL seen in a prompt here")
    ap.add_argument("--command", default="id -un")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    answers = parse_rules(args.answer)
    totp_rules = [k.lower() for k in (args.answer_totp or [])]
    seen = {"key": None}
    files = parse_rules(args.answer_file)

    def wait_file(path):
        deadline = time.time() + args.timeout
        while time.time() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    line = f.readline().strip()
                if line:
                    return line
            time.sleep(0.05)
        raise TimeoutError(f"no answer appeared in {path}")

    def handler(title, instructions, prompts):
        if title:
            print(f"info: {title}", file=sys.stderr, flush=True)
        if instructions:
            for line in instructions.splitlines():
                print(f"info: {line}", file=sys.stderr, flush=True)
        out = []
        for text, _echo in prompts:
            print(f"prompt: {text}", file=sys.stderr, flush=True)
            low = text.lower()
            reply = None
            m = re.search(r"key by hand: ([A-Z2-7]+)", (instructions or "") + text)
            if m:
                seen["key"] = m.group(1)
            u = re.search(r"https?://\S+", (instructions or "") + text)
            if u and args.url_file and not os.path.exists(args.url_file):
                with open(args.url_file + ".tmp", "w") as f:
                    f.write(u.group(0))
                os.rename(args.url_file + ".tmp", args.url_file)
            for key in totp_rules:
                if key in low and seen["key"]:
                    reply = totp(seen["key"])
                    break
            for key, value in answers:
                if reply is None and key in low:
                    reply = value
                    break
            if reply is None:
                for key, path in files:
                    if key in low:
                        reply = wait_file(path)
                        break
            if reply is None:
                print(f"no rule answers prompt {text!r}", file=sys.stderr)
                reply = ""
            out.append(reply)
        return out

    try:
        # Connects here (a refused or unreachable port is status 6 too).
        sock = paramiko.Transport(socket.create_connection((args.host, args.port),
                                                           timeout=args.timeout))
    except OSError as e:
        print(f"error: cannot connect to {args.host}:{args.port}: {e}", file=sys.stderr)
        return 6
    sock.banner_timeout = args.timeout
    sock.auth_timeout = args.timeout
    try:
        sock.start_client(timeout=args.timeout)
        try:
            sock.auth_interactive(args.user, handler)
        except paramiko.AuthenticationException as e:
            print(f"auth failed: {e}", file=sys.stderr)
            return 5
        if not sock.is_authenticated():
            print("auth failed", file=sys.stderr)
            return 5
        chan = sock.open_session(timeout=args.timeout)
        chan.settimeout(args.timeout)
        chan.exec_command(args.command)
        data = b""
        while True:
            chunk = chan.recv(65536)
            if not chunk:
                break
            data += chunk
        status = chan.recv_exit_status()
        sys.stdout.write(data.decode(errors="replace"))
        print("authenticated", file=sys.stderr)
        return status
    except Exception as e:  # noqa: BLE001 - report and fail
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 6
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
