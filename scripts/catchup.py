#!/usr/bin/env python3
"""A new member joins a 3-member Cairn cluster holding >= 1 GiB while clients keep writing.

Measures what issue 10 asks: that the learner catches up (by a streamed backend snapshot, then
the log) without stalling the cluster. Prints put latency in consecutive windows before, during
and after the catch-up, the catch-up time, and checks HashKV on all four members at the end.

    scripts/catchup.py [--gib 1.0] [--window 2] [--rate 1000]

Needs a release build (cargo build --release) and etcdctl (apt-get install etcd-client).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
DATA = os.path.join(ROOT, "target", "bench-data", "catchup")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Member:
    def __init__(self, name):
        self.name = name
        self.client = free_port()
        self.peer = free_port()
        self.dir = os.path.join(DATA, name)
        self.proc = None

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client}"

    @property
    def peer_url(self):
        return f"http://127.0.0.1:{self.peer}"

    def start(self, initial_cluster, state):
        log = open(os.path.join(DATA, f"{self.name}.log"), "w")
        self.proc = subprocess.Popen(
            [
                os.path.join(BIN, "cairn"),
                "--name", self.name,
                "--data-dir", self.dir,
                "--listen-client-urls", f"http://{self.endpoint}",
                "--advertise-client-urls", f"http://{self.endpoint}",
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-state", state,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def rss_mib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


def etcdctl(endpoint, *args):
    run = subprocess.run(
        ["etcdctl", f"--endpoints={endpoint}", *args],
        env=dict(os.environ, ETCDCTL_API="3"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run


def status(endpoint):
    run = etcdctl(endpoint, "endpoint", "status", "-w", "json")
    if run.returncode != 0:
        return None
    return json.loads(run.stdout)[0]["Status"]


def bench(endpoints, *args):
    run = subprocess.run(
        [os.path.join(BIN, "cairn-bench"), "--endpoints", endpoints, "--json", *args],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"cairn-bench failed: {run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0, help="backend size to reach before the join")
    ap.add_argument("--window", type=float, default=2.0, help="seconds per latency window")
    ap.add_argument("--rate", type=int, default=1000, help="puts/s during the measurement")
    args = ap.parse_args()

    shutil.rmtree(DATA, ignore_errors=True)
    os.makedirs(DATA)
    members = [Member(f"m{i}") for i in (1, 2, 3)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    for m in members:
        m.start(initial, "new")
    endpoints = ",".join(m.endpoint for m in members)
    try:
        run(args, members, endpoints, initial)
    finally:
        for m in members:
            m.stop()


def run(args, members, endpoints, initial):
    deadline = time.time() + 30
    while not all(status(m.endpoint) for m in members):
        if time.time() > deadline:
            sys.exit("cluster did not start")
        time.sleep(0.5)

    # Preload with 1 KiB values until the leader's backend holds the requested size.
    target = int(args.gib * (1 << 30))
    loaded = 0
    started = time.time()
    while (status(members[0].endpoint) or {}).get("dbSize", 0) < target:
        chunk = 200_000
        bench(
            endpoints, "--clients", "200", "--conns", "20", "--total", str(chunk),
            "put", "--key-size", "16", "--val-size", "1024",
            "--key-space-size", str(loaded + chunk), "--sequential-keys",
        )
        loaded += chunk
    size = status(members[0].endpoint)["dbSize"]
    print(f"preloaded {loaded} keys, backend {size / (1 << 30):.2f} GiB "
          f"in {time.time() - started:.0f} s", flush=True)

    windows = []
    stop = threading.Event()
    t0 = [None]

    def load():
        while not stop.is_set():
            start = time.time()
            r = bench(
                endpoints, "--clients", "10", "--conns", "3",
                "--duration", f"{args.window}s", "--rate", str(args.rate),
                "put", "--key-size", "16", "--val-size", "256", "--key-space-size", "100000",
            )
            windows.append((start, r))

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(5 * args.window)

    # Join m4 as a learner, as etcd's runbook does for large clusters.
    m4 = Member("m4")
    added = etcdctl(members[0].endpoint, "member", "add", "m4", "--learner",
                    f"--peer-urls={m4.peer_url}")
    if added.returncode != 0:
        stop.set()
        loader.join()
        sys.exit(f"member add failed: {added.stderr}")
    t0[0] = time.time()
    m4.start(initial + f",m4={m4.peer_url}", "existing")
    members.append(m4)
    caught_up = None
    while time.time() - t0[0] < 900:
        leader = status(members[0].endpoint)
        mine = status(m4.endpoint)
        if leader and mine and mine.get("dbSize", 0) >= target * 0.9 and \
                mine.get("raftAppliedIndex", 0) + 1000 >= leader.get("raftIndex", 0):
            caught_up = time.time() - t0[0]
            break
        time.sleep(0.2)
    time.sleep(5 * args.window)
    stop.set()
    loader.join()

    print(f"learner caught up in {caught_up:.1f} s" if caught_up else "learner did NOT catch up")
    print(f"{'window (s from join)':>22} {'puts/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>7}")
    for start, r in windows:
        lat = r["latency_seconds"]
        print(f"{start - t0[0]:>22.1f} {r['requests_per_second']:>8.0f} "
              f"{lat['p50'] * 1e3:>8.2f} {lat['p99'] * 1e3:>8.2f} {lat['max'] * 1e3:>8.2f} "
              f"{r['errors']:>7}")
    print("peak RSS MiB: " + ", ".join(f"{m.name} {m.rss_mib():.0f}" for m in members))

    # A caught-up learner can be promoted; then everyone agrees once the writes stop.
    m4_id = None
    listing = etcdctl(members[0].endpoint, "member", "list", "-w", "json")
    for m in json.loads(listing.stdout).get("members", []):
        if m.get("name") == "m4":
            m4_id = f"{m['ID']:x}"
    promoted = etcdctl(members[0].endpoint, "member", "promote", m4_id or "0")
    print(f"promote: {(promoted.stdout or promoted.stderr).strip()}")
    time.sleep(2)
    hashes = etcdctl(",".join(m.endpoint for m in members), "endpoint", "hashkv", "-w", "json")
    values = {h["HashKV"]["hash"] for h in json.loads(hashes.stdout)} if hashes.returncode == 0 \
        else {"error: " + hashes.stderr}
    print(f"hashkv on 4 members: {'equal' if len(values) == 1 else values}")


if __name__ == "__main__":
    main()
