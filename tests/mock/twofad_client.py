#!/usr/bin/python3
"""A raw client for 2fad's socket (4-byte big-endian length + JSON), for the
tests that act as an ordinary user's shell would: bypassing 2fa-enroll,
holding connections open, trickling a frame.

    frames SOCKET JSON...   one connection; sends each frame and prints the
                            answer (one line each; "closed" or "error ...")
    hold SOCKET N           opens N connections, each asking for its status;
                            prints "served" or what 2fad said instead
                            ("reply JSON" / "closed"), then "held"; keeps the
                            served ones busy (a request a second) until stdin
                            ends
    trickle SOCKET JSON S   sends one frame a byte every S seconds; prints
                            "reply JSON after T" or "closed after T" as soon
                            as 2fad answers or hangs up
"""
import os
import select
import socket
import struct
import sys
import time


def read_frame(s, timeout=30):
    s.settimeout(timeout)
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    n = struct.unpack(">I", head)[0]
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf.decode()


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def frames(path, payloads):
    s = connect(path)
    for p in payloads:
        data = p.encode()
        try:
            s.sendall(struct.pack(">I", len(data)) + data)
        except OSError as e:
            print(f"send failed: {e}", file=sys.stderr, flush=True)
        try:
            r = read_frame(s)
        except OSError as e:
            print(f"error {e}", flush=True)
            return
        print(r if r is not None else "closed", flush=True)


def hold(path, n):
    """The strongest way to keep slots: each connection sends a complete
    status request at once and then one every second (2fad closes idle
    connections and cuts slow frames, but serves real requests)."""
    data = b'{"version":1,"op":"status"}'
    frame = struct.pack(">I", len(data)) + data
    held = []
    for _ in range(n):
        s = connect(path)
        try:
            s.sendall(frame)
        except OSError:
            pass
        try:
            r = read_frame(s, 10)
        except OSError:
            r = None
        if r is None:
            print("closed", flush=True)
        elif '"result":"status"' in r:
            print("served", flush=True)
            held.append(s)
        else:
            print(f"reply {r}", flush=True)
    print("held", flush=True)
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if ready and not os.read(sys.stdin.fileno(), 1024):
            return
        for s in held:
            try:
                s.sendall(frame)
                read_frame(s, 10)
            except OSError:
                pass


def trickle(path, payload, delay):
    s = connect(path)
    data = payload.encode()
    frame = struct.pack(">I", len(data)) + data
    start = time.monotonic()
    for b in frame:
        ready, _, _ = select.select([s], [], [], 0)
        if ready:
            break
        try:
            s.send(bytes([b]))
        except OSError:
            break
        time.sleep(delay)
    try:
        r = read_frame(s, 60)
    except OSError:
        r = None
    took = time.monotonic() - start
    print(f"reply {r} after {took:.1f}" if r is not None else f"closed after {took:.1f}", flush=True)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "frames":
        frames(path, sys.argv[3:])
    elif mode == "hold":
        hold(path, int(sys.argv[3]))
    elif mode == "trickle":
        trickle(path, sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
