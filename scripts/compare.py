#!/usr/bin/env python3
"""Side-by-side benchmark of Cairn and real etcd on this machine.

Starts each server fresh with its data dir on the real disk (fsync counts), preloads 100 000
keys, runs the same cairn-bench workloads against each, alternating etcd, Cairn, etcd, Cairn ...
so that machine noise affects both alike, records peak RSS and data size, and prints Cairn/etcd
ratios. Every workload runs twice: unpinned, and with the server pinned to CPU 0 and the load
generator to CPU 1 (on a 2-core machine they otherwise compete for CPU, which hides differences in
server efficiency). For each workload it also reports the server's CPU time per request
(user + system, from /proc), the figure the machine's size cannot blur. It also measures the
disk's fsync floor. Results go to docs/perf-results.json, the plot to docs/perf-put-clients.png,
and the results tables into docs/performance.md between its RESULTS markers.

Usage: scripts/compare.py [--rounds N] [--quick] [--modes unpinned,pinned] [--data-dir DIR] [--no-docs]
"""

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fsync_floor(directory, n=1000):
    """Median latency of a 512-byte write + fdatasync, in seconds, for the two ways a log can
    write: appending to a growing file, and overwriting space preallocated with fallocate (what
    etcd's and Cairn's WALs do; the fdatasync then need not persist a new file size). Returns
    (append, preallocated); the lower one is the floor, the cheapest durable write this disk
    offers."""
    def probe(preallocate):
        path = os.path.join(directory, "fsync-probe")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        lat = []
        try:
            if preallocate:
                os.posix_fallocate(fd, 0, 512 * n)
            for i in range(n):
                t = time.perf_counter()
                os.pwrite(fd, b"x" * 512, 512 * i)
                os.fdatasync(fd)
                lat.append(time.perf_counter() - t)
        finally:
            os.close(fd)
            os.unlink(path)
        return statistics.median(lat)

    append, prealloc = [], []
    for _ in range(3):
        append.append(probe(False))
        prealloc.append(probe(True))
    return statistics.median(append), statistics.median(prealloc)


# Whether both servers get the same --snapshot-count (etcd 3.6's default) or keep their own
# defaults (etcd 3.4: 100 000; Cairn: 10 000).
SAME_SNAPSHOT_COUNT = True

# Where the server and the load generator run in each mode (None: wherever the scheduler likes).
PIN = {"unpinned": (None, None), "pinned": ("0", "1")}


def taskset(cpu):
    return ["taskset", "-c", cpu] if cpu else []


class Server:
    """One server, or a cluster of `members` servers of one kind (each with its own data dir on
    the same disk, all pinned to the same CPU set): CPU time, peak RSS and data size are summed
    over the members, and clients spread over every member's endpoint."""

    def __init__(self, kind, data_root, cpu=None, members=1, extra=()):
        self.kind = kind
        names = [f"m{i + 1}" for i in range(members)]
        self.ports = [free_port() for _ in names]
        peers = [f"http://127.0.0.1:{free_port()}" for _ in names]
        self.dir = os.path.join(data_root, f"{kind}-{self.ports[0]}")
        os.makedirs(self.dir)
        exe = shutil.which("etcd") if kind == "etcd" else os.path.join(BIN, "cairn")
        initial = ",".join(f"{n}={p}" for n, p in zip(names, peers))
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.procs = []
        self.cmds = []
        for name, port, peer in zip(names, self.ports, peers):
            client = f"http://127.0.0.1:{port}"
            args = [
                exe, "--name", name, "--data-dir", os.path.join(self.dir, "data", name),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", initial,
                # The same settings for both: etcd 3.6's default snapshot count.
                *(["--snapshot-count", "10000"] if SAME_SNAPSHOT_COUNT else []),
                *extra,
            ]
            self.cmds.append(taskset(cpu) + args)
            self.procs.append(subprocess.Popen(self.cmds[-1], stdout=self.log,
                                               stderr=self.log))
        self.proc = self.procs[0]
        deadline = time.time() + 30
        for port in self.ports:
            self.wait_healthy(port, deadline)

    def wait_healthy(self, port, deadline):
        """Waits until the member on `port` answers /health with true (a linearizable read)."""
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if b'"true"' in r.read():
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"{self.kind} did not become healthy")
            time.sleep(0.02)

    def restart(self, i, timeout=300):
        """SIGKILLs member `i` and starts it again on its data dir; returns the seconds from
        the new process's start until it serves /health."""
        self.procs[i].kill()
        self.procs[i].wait()
        start = time.time()
        self.procs[i] = subprocess.Popen(self.cmds[i], stdout=self.log, stderr=self.log)
        self.wait_healthy(self.ports[i], start + timeout)
        return time.time() - start

    def rss(self, field="VmRSS"):
        """Per member, in bytes: VmRSS (now) or VmHWM (peak)."""
        out = []
        for proc in self.procs:
            with open(f"/proc/{proc.pid}/status") as f:
                out.append(next((int(line.split()[1]) * 1024 for line in f
                                 if line.startswith(field + ":")), 0))
        return out

    @property
    def endpoint(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def peak_rss(self):
        return sum(self.rss("VmHWM"))

    def cpu_seconds(self):
        """User + system CPU time the server (all its members) has used so far."""
        total = 0.0
        for proc in self.procs:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def settle(self, timeout=15):
        """Waits until the server is idle (less than 2% of a CPU over 0.5 s): work left over
        from the preload (garbage collection, backend commits) must not be billed to the first
        workload's CPU time per request."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - before < 0.01:
                return

    def data_size(self):
        total = 0
        for dirpath, _, files in os.walk(os.path.join(self.dir, "data")):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, name))
                except OSError:
                    pass
        return total

    def stop(self):
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def bench(endpoint, args, cpu=None):
    """Runs cairn-bench; the result carries the generator's own CPU time ("generator_cpu")."""
    cmd = taskset(cpu) + [os.path.join(BIN, "cairn-bench"), "--endpoints", endpoint, "--json"] + args
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = json.loads(out)
    r["generator_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r


def workloads(quick, members=1):
    scale = 0.3 if quick else 1.0

    def n(x):
        return str(max(200, int(x * scale)))

    put = ["put", "--key-size", "8", "--val-size", "256", "--key-space-size", "100000"]
    w = [
        # The cost of a request that does no work: what a client round trip adds to any write.
        ("range s, 1 client (round trip)", ["--clients", "1", "--conns", "1", "--total", n(3000),
                                            "range", "missing-key", "--consistency", "s"]),
    ]
    if members == 1:
        w.append(("put, 1 client", ["--clients", "1", "--conns", "1", "--total", n(3000)] + put))
    else:
        # One client talks to one member: whether that is the leader or a follower decides
        # how many hops a write takes, so each is measured on its own, never left to which
        # member happened to win the election.
        w += [
            ("put, 1 client -> leader", ["--clients", "1", "--conns", "1", "--total", n(3000),
                                         "--target-leader"] + put),
            ("put, 1 client -> follower", ["--clients", "1", "--conns", "1", "--total", n(3000),
                                           "--target-follower"] + put),
        ]
    w += [
        ("put, 100 clients", ["--clients", "100", "--conns", "10", "--total", n(30000)] + put),
        ("put, 1000 clients", ["--clients", "1000", "--conns", "100", "--total", n(100000)] + put),
        ("txn-put, 100 clients", ["--clients", "100", "--conns", "10", "--total", n(20000),
                                  "txn-put", "--key-size", "8", "--val-size", "256",
                                  "--key-space-size", "10000"]),
        ("range l, 1000 clients", ["--clients", "1000", "--conns", "100", "--total", n(100000),
                                   "range", "00000001", "--consistency", "l"]),
        ("range s, 1000 clients", ["--clients", "1000", "--conns", "100", "--total", n(100000),
                                   "range", "00000001", "--consistency", "s"]),
        # For the watch workloads "req/s" is events delivered per second and the latency is
        # put-to-event.
        ("watch events, 100 watchers", ["--clients", "10", "--conns", "10", "--total", n(3000),
                                        "watch", "--watchers", "100"]),
        ("watch-latency, 100 watchers @100 puts/s", ["--clients", "1", "--conns", "10",
                                                     "--total", n(500), "watch-latency",
                                                     "--watchers", "100"]),
        ("lease-keepalive, 100 clients", ["--clients", "100", "--conns", "10", "--total", n(50000),
                                          "lease-keepalive"]),
    ]
    sweep = [
        (c, ["--clients", str(c), "--conns", str(max(1, c // 10)), "--total", n(max(2000, c * 40))] + put)
        for c in [1, 10, 50, 100, 300, 1000]
    ]
    return w, sweep


def preload(endpoint, cpu):
    # 100 000 keys, as the independent load generator used: a store of realistic size, not a
    # handful of hot keys.
    bench(endpoint, ["--clients", "100", "--conns", "10", "--total", "100000", "put",
                     "--key-size", "8", "--val-size", "256", "--key-space-size", "100000",
                     "--sequential-keys"], cpu)


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn", "-p", "cairn-bench"],
                   cwd=ROOT, check=True)


def run(args):
    data_root = os.path.abspath(args.data_dir)
    os.makedirs(data_root, exist_ok=True)
    build()
    floor = fsync_floor(data_root)
    log(f"fsync floor: append {floor[0] * 1e6:.0f} us, preallocated {floor[1] * 1e6:.0f} us")
    named, sweep = workloads(args.quick, args.members)
    if args.only:
        named = [(name, a) for name, a in named if any(o in name for o in args.only.split(","))]
        sweep = []
    modes = [m for m in args.modes.split(",") if m in PIN]
    results = {m: {"etcd": {}, "cairn": {}} for m in modes}
    cpu = {m: {"etcd": {}, "cairn": {}} for m in modes}
    sweep_results = {"etcd": {}, "cairn": {}}
    rss = {"etcd": [], "cairn": []}
    size = {"etcd": [], "cairn": []}
    for rnd in range(args.rounds):
        for mode in modes:
            server_cpu, bench_cpu = PIN[mode]
            for kind in ("etcd", "cairn"):
                log(f"round {rnd + 1}, {mode}: {kind}")
                srv = Server(kind, data_root, server_cpu, args.members)
                try:
                    preload(srv.endpoint, bench_cpu)
                    srv.settle()
                    for name, wargs in named:
                        before = srv.cpu_seconds()
                        r = bench(srv.endpoint, wargs, bench_cpu)
                        used = srv.cpu_seconds() - before
                        results[mode][kind].setdefault(name, []).append(r)
                        cpu[mode][kind].setdefault(name, []).append(
                            used / max(1, r["requests"]))
                        log(f"  {name}: {r['requests_per_second']:.0f} req/s, "
                            f"p99 {r['latency_seconds']['p99'] * 1e3:.2f} ms, "
                            f"server CPU {used / max(1, r['requests']) * 1e6:.1f} us/req, "
                            f"errors {r['errors']}")
                    if mode == modes[0]:
                        for clients, wargs in sweep:
                            r = bench(srv.endpoint, wargs, bench_cpu)
                            sweep_results[kind].setdefault(clients, []).append(
                                r["requests_per_second"])
                        rss[kind].append(srv.peak_rss())
                        size[kind].append(srv.data_size())
                finally:
                    srv.stop()
    return summarize(floor, named, results, cpu, sweep_results, rss, size)


def med(xs):
    return statistics.median(xs) if xs else 0


def summarize(floor, named, results, cpu, sweep_results, rss, size):
    modes = {}
    for mode, by_kind in results.items():
        rows = []
        for name, _ in named:
            e, c = by_kind["etcd"][name], by_kind["cairn"][name]
            row = {
                "workload": name,
                "etcd_rps": med([r["requests_per_second"] for r in e]),
                "cairn_rps": med([r["requests_per_second"] for r in c]),
                "etcd_p99": med([r["latency_seconds"]["p99"] for r in e]),
                "cairn_p99": med([r["latency_seconds"]["p99"] for r in c]),
                "etcd_p50": med([r["latency_seconds"]["p50"] for r in e]),
                "cairn_p50": med([r["latency_seconds"]["p50"] for r in c]),
                "etcd_cpu_per_request": med(cpu[mode]["etcd"][name]),
                "cairn_cpu_per_request": med(cpu[mode]["cairn"][name]),
                "generator_cpu_per_request": med(
                    [r["generator_cpu"] / max(1, r["requests"]) for r in e + c]),
                "errors": sum(r["errors"] for r in e + c),
            }
            row["ratio"] = row["cairn_rps"] / row["etcd_rps"] if row["etcd_rps"] else 0
            rows.append(row)
        modes[mode] = rows
    first = next(iter(modes.values()), [])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "fsync_floor_seconds": min(floor),
        "fsync_append_seconds": floor[0],
        "fsync_preallocated_seconds": floor[1],
        "rows": first,
        "modes": modes,
        "sweep": {k: {str(c): med(v) for c, v in d.items()} for k, d in sweep_results.items()},
        "peak_rss_bytes": {k: med(v) for k, v in rss.items()},
        "data_size_bytes": {k: med(v) for k, v in size.items()},
    }


def mode_table(rows):
    lines = [
        "| workload | etcd req/s | Cairn req/s | Cairn/etcd | etcd p50 / p99 (ms) "
        "| Cairn p50 / p99 (ms) | server CPU µs/req etcd / Cairn | etcd/Cairn CPU "
        "| generator CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ec, cc = r["etcd_cpu_per_request"], r["cairn_cpu_per_request"]
        lines.append(
            f"| {r['workload']} | {r['etcd_rps']:.0f} | {r['cairn_rps']:.0f} | {r['ratio']:.2f}× "
            f"| {r['etcd_p50'] * 1e3:.2f} / {r['etcd_p99'] * 1e3:.2f} "
            f"| {r['cairn_p50'] * 1e3:.2f} / {r['cairn_p99'] * 1e3:.2f} "
            f"| {ec * 1e6:.1f} / {cc * 1e6:.1f} | {ec / cc if cc else 0:.2f}× "
            f"| {r['generator_cpu_per_request'] * 1e6:.1f} |")
    return lines


def table(res):
    floor = res["fsync_floor_seconds"]
    lines = [
        f"fsync floor (512 B write + fdatasync, median): {floor * 1e6:.0f} µs "
        f"(into preallocated space {res['fsync_preallocated_seconds'] * 1e6:.0f} µs, "
        f"appending {res['fsync_append_seconds'] * 1e6:.0f} µs).",
        "",
    ]
    titles = {
        "unpinned": "Unpinned (server and load generator share both CPUs):",
        "pinned": "Pinned (server on CPU 0, load generator on CPU 1):",
    }
    for mode, rows in res.get("modes", {"unpinned": res["rows"]}).items():
        lines += [titles.get(mode, mode), ""] + mode_table(rows) + [""]
    one = next((r for r in res["rows"] if r["workload"] == "put, 1 client"), None)
    trip = next((r for r in res["rows"] if r["workload"].startswith("range s, 1 client")), None)
    if one and floor:
        lines += [
            "",
            f"Put, 1 client, p50 as a multiple of the fsync floor: etcd "
            f"{one['etcd_p50'] / floor:.2f}×, Cairn {one['cairn_p50'] / floor:.2f}×."
            + (f" A no-op request (serializable range of a missing key) takes "
               f"{trip['etcd_p50'] * 1e6:.0f} µs (etcd) / {trip['cairn_p50'] * 1e6:.0f} µs (Cairn) "
               f"at p50, {trip['cairn_p50'] / floor:.2f}× the floor." if trip else ""),
        ]
    e_rss, c_rss = res["peak_rss_bytes"]["etcd"], res["peak_rss_bytes"]["cairn"]
    e_sz, c_sz = res["data_size_bytes"]["etcd"], res["data_size_bytes"]["cairn"]
    lines += [
        "",
        f"Peak RSS: etcd {e_rss / 2**20:.1f} MiB, Cairn {c_rss / 2**20:.1f} MiB "
        f"({c_rss / e_rss if e_rss else 0:.2f}×). "
        f"Data dir after the run: etcd {e_sz / 2**20:.1f} MiB, Cairn {c_sz / 2**20:.1f} MiB.",
        "",
        "Put throughput by client count (req/s):",
        "",
        "| clients | etcd | Cairn | Cairn/etcd |",
        "|---:|---:|---:|---:|",
    ]
    for c in res["sweep"]["etcd"]:
        e, k = res["sweep"]["etcd"][c], res["sweep"]["cairn"].get(c, 0)
        lines.append(f"| {c} | {e:.0f} | {k:.0f} | {k / e if e else 0:.2f}× |")
    return "\n".join(lines)


def plot(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for kind, label in (("etcd", "etcd 3.4.23"), ("cairn", "Cairn")):
        pts = sorted((int(c), v) for c, v in res["sweep"][kind].items())
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("put requests / s (256-byte values)")
    ax.set_title(f"Single member, same disk, {res['date']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def write_docs(res):
    docs = os.path.join(ROOT, "docs")
    with open(os.path.join(docs, "perf-results.json"), "w") as f:
        json.dump(res, f, indent=2)
    plot(res, os.path.join(docs, "perf-put-clients.png"))
    md = os.path.join(docs, "performance.md")
    with open(md) as f:
        text = f.read()
    start, end = "<!-- RESULTS START -->", "<!-- RESULTS END -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        body = f"{start}\nMeasured {res['date']}.\n\n{table(res)}\n{end}"
        with open(md, "w") as f:
            f.write(head + body + tail)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    p.add_argument("--quick", action="store_true", help="fewer requests per workload")
    p.add_argument("--members", type=int, default=1,
                   help="members per server (3: a 3-member cluster of each, same disk)")
    p.add_argument("--data-dir", default=os.path.join(ROOT, "target", "bench-data"),
                   help="where the servers keep their data (must be on the real disk)")
    p.add_argument("--no-docs", action="store_true", help="do not update docs/")
    p.add_argument("--only", default="",
                   help="comma-separated parts of workload names to run (skips the client sweep)")
    p.add_argument("--modes", default="unpinned,pinned",
                   help="comma-separated: unpinned, pinned (server CPU 0, generator CPU 1)")
    args = p.parse_args()
    if not shutil.which("etcd"):
        sys.exit("etcd not found: apt-get install etcd-server")
    res = run(args)
    print(table(res))
    if not args.no_docs:
        write_docs(res)


if __name__ == "__main__":
    main()
