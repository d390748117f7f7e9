#!/usr/bin/env python3
"""Put and range latency while a large backend is defragmented (or saved as a snapshot), Cairn
and etcd side by side.

For each server: one member, a backend of --size-gb (values of 10 KiB), half of the keys deleted
and the history compacted (so the defragmentation has space to give back), then paced puts and
linearizable ranges (--rate each, 10 clients each) in 2-second windows: --baseline seconds
before the operation, for as long as `etcdctl defrag` (or, with --operation snapshot,
`etcdctl snapshot save`) runs, and --baseline seconds after it. Prints p50/p99/max and throughput per phase. etcd stops serving
while it defragments (issue #9222); Cairn's target is a p99 within 2x of its baseline, and a
snapshot of a multi-GB backend must not stall writes on either.

    scripts/defrag_latency.py [--size-gb 2] [--rate 500] [--pin] [--only cairn|etcd]
                              [--operation defrag|snapshot]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import BIN, ROOT, Server, build, taskset  # noqa: E402

VALUE = 10_000
WINDOW = 2.0


def bench(endpoint, args, cpu):
    cmd = taskset(cpu) + [os.path.join(BIN, "cairn-bench"), "--endpoints", endpoint, "--json"] + args
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def window(endpoint, rate, keys, cpu):
    """One WINDOW of paced puts and ranges at the same time; returns (put, range) results."""
    res = {}

    def run(name, args):
        res[name] = bench(endpoint, ["--clients", "10", "--conns", "2", "--rate", str(rate),
                                     "--duration", f"{WINDOW}s"] + args, cpu)

    put = ["put", "--key-size", "8", "--val-size", "256", "--key-space-size", "10000"]
    # Reads of the keys that survive the deletion (the upper half).
    rng = ["range", f"{keys // 2:08d}", f"{keys // 2 + 100:08d}", "--consistency", "l"]
    threads = [threading.Thread(target=run, args=("put", put)),
               threading.Thread(target=run, args=("range", rng))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return res["put"], res["range"]


def summary(results):
    lat = [r["latency_seconds"] for r in results]
    return {
        "p50_ms": max(x["p50"] for x in lat) * 1e3,
        "p99_ms": max(x["p99"] for x in lat) * 1e3,
        "max_ms": max(x["max"] for x in lat) * 1e3,
        "rps": sum(r["requests_per_second"] for r in results) / max(1, len(results)),
        "errors": sum(r["errors"] for r in results),
    }


def measure(kind, args, data_root):
    server_cpu, bench_cpu = ("0", "1") if args.pin else (None, None)
    # A quota well above the data: the point is the defragmentation, not NOSPACE.
    srv = Server(kind, data_root, server_cpu, extra=["--quota-backend-bytes", str(8 << 30)])
    try:
        ep = srv.endpoint
        keys = int(args.size_gb * 1e9 / VALUE)
        t = time.time()
        loaded = bench(ep, ["--clients", "100", "--conns", "10", "--total", str(keys), "put",
                            "--key-size", "8", "--val-size", str(VALUE),
                            "--key-space-size", str(keys), "--sequential-keys"], bench_cpu)
        if loaded["errors"]:
            sys.exit(f"{kind}: {loaded['errors']} puts of the preload failed: "
                     f"{loaded.get('first_error')}")
        print(f"{kind}: preloaded {keys} keys in {time.time() - t:.0f} s", flush=True)
        etcdctl = ["etcdctl", "--endpoints", ep, "--command-timeout", "600s"]
        env = dict(os.environ, ETCDCTL_API="3")
        subprocess.run(etcdctl + ["del", "00000000", f"{keys // 2:08d}"], check=True, env=env,
                       capture_output=True)
        st = json.loads(subprocess.run(etcdctl + ["endpoint", "status", "-w", "json"], env=env,
                                       check=True, capture_output=True, text=True).stdout)
        rev = st[0]["Status"]["header"]["revision"]
        subprocess.run(etcdctl + ["compact", str(rev), "--physical"], check=True, env=env,
                       capture_output=True)
        size_before = srv.data_size()
        srv.settle(60)
        base = [window(ep, args.rate, keys, bench_cpu) for _ in range(int(args.baseline / WINDOW))]
        done = threading.Event()
        took = {}

        # The client's copy goes to memory when it can: written to the server's disk, its
        # gigabytes of unpaced writes hold up the server's WAL fsyncs, whichever the server.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else data_root
        snapshot_file = os.path.join(shm, f"{kind}-snapshot.db")

        def defrag():
            t0 = time.time()
            if args.operation == "snapshot":
                subprocess.run(etcdctl + ["snapshot", "save", snapshot_file], check=True,
                               env=env, capture_output=True)
                os.remove(snapshot_file)
            else:
                subprocess.run(etcdctl + ["defrag"], check=True, env=env, capture_output=True)
            took["s"] = time.time() - t0
            done.set()

        d = threading.Thread(target=defrag)
        d.start()
        during = []
        while not done.is_set():
            during.append(window(ep, args.rate, keys, bench_cpu))
        d.join()
        after = [window(ep, args.rate, keys, bench_cpu) for _ in range(int(args.baseline / WINDOW))]
        size_after = srv.data_size()
    finally:
        srv.stop()
    row = {"kind": kind, "defrag_s": took["s"], "data_before": size_before,
           "data_after": size_after}
    for phase, ws in (("baseline", base), ("during", during), ("after", after)):
        row[phase] = {"put": summary([w[0] for w in ws]), "range": summary([w[1] for w in ws]),
                      "windows": len(ws)}
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-gb", type=float, default=2.0)
    p.add_argument("--rate", type=int, default=500, help="puts/s and ranges/s, each")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds measured before")
    p.add_argument("--pin", action="store_true", help="server on CPU 0, load on CPU 1")
    p.add_argument("--only", choices=["cairn", "etcd"])
    p.add_argument("--operation", choices=["defrag", "snapshot"], default="defrag")
    p.add_argument("--data-dir", default=os.path.join(ROOT, "target", "bench-data"))
    args = p.parse_args()
    build()
    data_root = os.path.abspath(args.data_dir)
    os.makedirs(data_root, exist_ok=True)
    rows = []
    for kind in ("etcd", "cairn"):
        if args.only and kind != args.only:
            continue
        if kind == "etcd" and not shutil.which("etcd"):
            sys.exit("etcd not found: apt-get install etcd-server")
        rows.append(measure(kind, args, data_root))
    mode = "pinned" if args.pin else "unpinned"
    what = "Snapshot save" if args.operation == "snapshot" else "Defragmentation"
    print(f"\n{what} of a {args.size_gb} GB backend ({mode}), {args.rate} puts/s and "
          f"{args.rate} ranges/s:\n")
    print("| server | phase | put p50 / p99 / max (ms) | range p50 / p99 / max (ms) | put/s | "
          "range/s | errors |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        for phase in ("baseline", "during", "after"):
            pu, ra = r[phase]["put"], r[phase]["range"]
            print(f"| {r['kind']} | {phase} | {pu['p50_ms']:.1f} / {pu['p99_ms']:.1f} / "
                  f"{pu['max_ms']:.0f} | {ra['p50_ms']:.1f} / {ra['p99_ms']:.1f} / "
                  f"{ra['max_ms']:.0f} | {pu['rps']:.0f} | {ra['rps']:.0f} | "
                  f"{pu['errors'] + ra['errors']} |")
        print(f"| {r['kind']} | {args.operation} took {r['defrag_s']:.1f} s, data dir "
              f"{r['data_before'] / 1e9:.2f} → {r['data_after'] / 1e9:.2f} GB | | | | | |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
