#!/usr/bin/env python3
"""Per-member memory and restart time with 1M keys, Cairn against etcd, in one run.

For each server: start `--members` members, write 1 000 000 keys of 256 B, wait for the
members to go idle, record every member's RSS (now and peak), then SIGKILL one member, start it
again on its data dir and time it until it serves /health (a linearizable read). Prints one
table; with --pin the servers run on CPU 0 and the load generator on CPU 1.

    scripts/memory_restart.py [--members 3] [--keys 1000000] [--pin]
"""

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the same servers, generator and build as the comparison)


def measure(kind, args, root):
    server_cpu, gen_cpu = ("0", "1") if args.pin else (None, None)
    s = compare.Server(kind, root, cpu=server_cpu, members=args.members)
    try:
        compare.bench(s.endpoint, ["--clients", "200", "--conns", "20", "--total",
                                   str(args.keys), "put", "--key-size", "8", "--val-size",
                                   "256", "--key-space-size", str(args.keys),
                                   "--sequential-keys"], gen_cpu)
        s.settle(timeout=60)
        rss, peak = s.rss("VmRSS"), s.rss("VmHWM")
        # The last member: a follower in most runs, as a routine restart would be.
        victim = args.members - 1
        took = s.restart(victim)
        after = s.rss("VmRSS")[victim]
        return {"rss": rss, "peak": peak, "restart_s": took, "rss_after_restart": after,
                "data": s.data_size() / args.members}
    finally:
        s.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--pin", action="store_true")
    p.add_argument("--kinds", default="etcd,cairn", help="which servers to measure")
    args = p.parse_args()
    compare.build()
    root = os.path.join(compare.ROOT, "target", "bench-data", "memory-restart")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    res = {kind: measure(kind, args, root) for kind in args.kinds.split(",")}
    mib = 1 << 20
    print(f"{args.members} member(s), {args.keys} keys of 256 B, "
          f"{'pinned' if args.pin else 'unpinned'}")
    print(f"| | etcd | Cairn | Cairn/etcd |\n|---|---:|---:|---:|")
    for label, f in [
        ("RSS per member, idle (MiB)", lambda r: max(r["rss"]) / mib),
        ("peak RSS per member (MiB)", lambda r: max(r["peak"]) / mib),
        ("summed peak RSS (MiB)", lambda r: sum(r["peak"]) / mib),
        ("restart to serving (s)", lambda r: r["restart_s"]),
        ("RSS after restart (MiB)", lambda r: r["rss_after_restart"] / mib),
        ("data dir per member (MiB)", lambda r: r["data"] / mib),
    ]:
        e = f(res["etcd"]) if "etcd" in res else 0.0
        c = f(res["cairn"]) if "cairn" in res else 0.0
        print(f"| {label} | {e:.2f} | {c:.2f} | {c / e if e else 0:.2f}× |")


if __name__ == "__main__":
    main()
