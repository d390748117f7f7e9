#!/usr/bin/env python3
"""How much a large range running in a loop slows writes down.

Starts a server (a `cairn` binary, or real etcd with --etcd) with a fresh data dir, loads
100 000 keys of 256 bytes, then measures put latency with cairn-bench twice: alone, and while
another cairn-bench reads all 100 000 keys in a loop. Prints both, and the ratio of put p99 with
and without the range loop. Run it unpinned (default) and with --pin (server on CPU 0, load
generators on CPU 1), since on a 2-core machine the generators compete with the server.

Usage: scripts/range_interference.py [--server PATH] [--etcd] [--pin] [--seconds N]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "cairn-bench")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return b'"true"' in r.read()
    except OSError:
        return False


def start(server, etcd, data, pin):
    port, peer = free_port(), free_port()
    client = f"http://127.0.0.1:{port}"
    peer_url = f"http://127.0.0.1:{peer}"
    cmd = ["taskset", "-c", "0"] if pin else []
    cmd += [server, "--data-dir", data, "--listen-client-urls", client,
            "--advertise-client-urls", client, "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"default={peer_url}"]
    if etcd:
        cmd += ["--quota-backend-bytes", str(8 << 30)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not healthy(port):
        if time.time() > deadline or proc.poll() is not None:
            sys.exit(f"server did not start: {cmd}")
        time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def thread_cpu(pid):
    """CPU seconds used so far by each thread of `pid`, summed per thread name."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def bench(endpoint, args, pin):
    cmd = (["taskset", "-c", "1"] if pin else []) + [BENCH, "--endpoints", endpoint, "--json"] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", default=os.path.join(ROOT, "target", "release", "cairn"))
    p.add_argument("--etcd", action="store_true", help="the server is real etcd")
    p.add_argument("--pin", action="store_true")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--range-limit", type=int, default=0,
                   help="limit of the looping range (0: all 100 000 keys); with 1 the server "
                        "still walks the whole index but sends one key, which separates the "
                        "cost of walking from the cost of moving 25 MB")
    a = p.parse_args()
    data = tempfile.mkdtemp(prefix="range-interference-", dir=os.path.expanduser("~"))
    proc, ep = start(a.server, a.etcd, os.path.join(data, "d"), a.pin)
    try:
        bench(ep, ["--clients", "50", "--conns", "5", "put", "--total", "100000",
                   "--key-space-size", "100000", "--sequential-keys", "--val-size", "256"], a.pin)
        put = ["--clients", "10", "--conns", "2", "--duration", f"{a.seconds}s", "put",
               "--key-space-size", "100000", "--val-size", "256"]
        alone = bench(ep, put, a.pin)
        ranger = subprocess.Popen(
            (["taskset", "-c", "1"] if a.pin else [])
            + [BENCH, "--endpoints", ep, "--json", "--clients", "1",
               "--duration", f"{a.seconds + 4}s", "range", "0", "--prefix",
               "--limit", str(a.range_limit)],
            stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        before = thread_cpu(proc.pid)
        loaded = bench(ep, put, a.pin)
        after = thread_cpu(proc.pid)
        ranges = json.loads(ranger.communicate()[0])
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)
    ms = lambda r, q: r["latency_seconds"][q] * 1000
    print(f"server {a.server}{' (pinned)' if a.pin else ''}")
    print(f"  puts alone:            {alone['requests_per_second']:8.0f}/s  "
          f"p50 {ms(alone, 'p50'):6.2f} ms  p99 {ms(alone, 'p99'):6.2f} ms")
    print(f"  puts with range loop:  {loaded['requests_per_second']:8.0f}/s  "
          f"p50 {ms(loaded, 'p50'):6.2f} ms  p99 {ms(loaded, 'p99'):6.2f} ms")
    print(f"  100k-key ranges:       {ranges['requests_per_second']:8.2f}/s  "
          f"p50 {ms(ranges, 'p50'):6.1f} ms")
    print(f"  put p99 ratio (with / without): {ms(loaded, 'p99') / ms(alone, 'p99'):.2f}x")
    used = {n: after[n] - before.get(n, 0.0) for n in after}
    print(f"  server CPU while both ran ({a.seconds} s): " + ", ".join(
        f"{n} {t:.1f} s" for n, t in sorted(used.items(), key=lambda x: -x[1]) if t >= 0.05))


if __name__ == "__main__":
    main()
