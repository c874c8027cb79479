#!/usr/bin/env python3
"""What supervisors' AUDITs cost an operator taking calls, against a running
server (docs/performance.md, nineteenth session). Modes:

  audits  N connections of K pipelined `AUDIT by=worker` each, while one
          operator connection sends ACCEPTs one at a time: the ACCEPTs'
          count and p50 / p99 / max latency, and how long the audits took.
  none    the operator alone for SECS seconds (the same figures, no audit).
  close   25 pipelined AUDITs on a connection closed after 0.3 s, then
          another supervisor's AUDIT: how long it waited.

usage: audit_stall.py PORT DATA_DIR MODE [N K | SECS]
Tokens are read from DATA_DIR/tokens.toml (the server's own file).
"""
import re, socket, sys, threading, time, tomllib

port, data, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
toks = tomllib.load(open(f"{data}/tokens.toml", "rb"))["token"]
sec = {t["role"]: t["secret"] for t in toks if not t.get("revoked")}


def conn(role):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    s.sendall(f"AUTH token={sec[role]}\n".encode())
    assert f.readline().startswith(b"OK")
    return s, f


def rows(f):
    head = f.readline()
    n = int(re.search(rb"count=(\d+)", head).group(1))
    for _ in range(n):
        f.readline()


def accepts(s, f, until):
    lat, i = [], 0
    while not until():
        t0 = time.time()
        s.sendall(f"ACCEPT text=路灯坏了{i} grid=JDZ-NH-01\n".encode())
        r = f.readline()
        lat.append(time.time() - t0)
        assert r.startswith(b"OK"), r
        i += 1
    lat.sort()
    ms = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000
    return f"{len(lat)} ACCEPTs: p50 {ms(0.5):.1f} ms, p99 {ms(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms"


if mode == "audits":
    n, k = int(sys.argv[4]), int(sys.argv[5])
    done, finished = threading.Event(), [0]
    lock = threading.Lock()

    def supervisor():
        s, f = conn("supervisor")
        s.sendall(b"AUDIT by=worker\n" * k)
        for _ in range(k):
            rows(f)
        with lock:
            finished[0] += 1
            if finished[0] == n:
                done.set()

    s, f = conn("operator")
    t0 = time.time()
    for t in [threading.Thread(target=supervisor) for _ in range(n)]:
        t.start()
    out = accepts(s, f, done.is_set)
    print(f"{n}x{k} pipelined AUDIT by=worker took {time.time() - t0:.1f} s; meanwhile {out}")
elif mode == "none":
    secs = float(sys.argv[4])
    s, f = conn("operator")
    end = time.time() + secs
    print(f"no AUDIT, {secs:.0f} s: {accepts(s, f, lambda: time.time() >= end)}")
elif mode == "close":
    s, f = conn("supervisor")
    s.sendall(b"AUDIT by=worker\n" * 25)
    time.sleep(0.3)
    f.close()  # the socket's file holds the descriptor too
    s.close()
    time.sleep(3)
    a, af = conn("supervisor")
    t0 = time.time()
    a.sendall(b"AUDIT by=county\n")
    rows(af)
    print(f"another supervisor's AUDIT after the close: {(time.time() - t0) * 1000:.0f} ms")
else:
    sys.exit(f"unknown mode {mode}")
