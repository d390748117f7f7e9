#!/usr/bin/env python3
"""Puts with 1000 clients under client TLS and auth (simple tokens, a non-root user whose role
grants read-write on the written keys), side by side with real etcd configured the same way.

Load comes from scripts/etcd-client-bench (the `etcd-client` crate, a generator Cairn did not
write), built with `PROTOC=<protoc> cargo build --release` in that directory. Each server starts
fresh, with TLS on its client URL, auth enabled through etcdctl, then takes 100 000 puts over
100 connections; rounds alternate etcd and Cairn. Every comparison runs unpinned and with the
server on CPU 0 and the generator on CPU 1. Reports requests/s, p99, and server CPU time per
request (user + system from /proc), and Cairn/etcd ratios.

Usage: scripts/tls_auth_compare.py [--rounds N] [--total N] [--modes unpinned,pinned]
                                   [--no-tls] [--no-auth]   (to see what each part costs)
"""

import argparse
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import BIN, ROOT, free_port, log, taskset  # noqa: E402

GENERATOR = os.path.join(ROOT, "scripts", "etcd-client-bench", "target", "release",
                         "etcd-client-bench")


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1, with openssl."""
    def sh(*args):
        subprocess.run(args, check=True, capture_output=True)
    ca_key, ca, key, csr, cert = (os.path.join(d, n) for n in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=bench-ca")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
       "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class TlsServer:
    def __init__(self, kind, root, certs, cpu, tls=True):
        ca, cert, key = certs
        self.kind, self.ca, self.tls = kind, ca, tls
        self.port = free_port()
        peer = f"http://127.0.0.1:{free_port()}"
        client = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.dir = os.path.join(root, f"{kind}-{self.port}")
        os.makedirs(self.dir)
        exe = shutil.which("etcd") if kind == "etcd" else os.path.join(BIN, "cairn")
        cmd = taskset(cpu) + [
            exe, "--name", "m1", "--data-dir", os.path.join(self.dir, "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"m1={peer}", "--snapshot-count", "10000",
            *(["--cert-file", cert, "--key-file", key] if tls else []),
        ]
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        ctx = ssl.create_default_context(cafile=ca) if tls else None
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=2, context=ctx) as r:
                    if b'"true"' in r.read():
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"{kind} did not become healthy")
            time.sleep(0.05)

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def etcdctl(self, *args):
        env = dict(os.environ, ETCDCTL_API="3")
        tls = [f"--endpoints=https://{self.endpoint}", f"--cacert={self.ca}"] if self.tls else \
            [f"--endpoints=http://{self.endpoint}"]
        subprocess.run(["etcdctl", *tls, *args], check=True, capture_output=True, env=env)

    def enable_auth(self):
        for step in (["user", "add", "root:rootpw"], ["user", "add", "bench:benchpw"],
                     ["role", "add", "bench"],
                     # Every key the generator writes ("00000000" … "00099999").
                     ["role", "grant-permission", "bench", "readwrite", "0", "1"],
                     ["user", "grant-role", "bench", "bench"], ["auth", "enable"]):
            self.etcdctl(*step)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def one(kind, root, certs, mode, total, tls=True, auth=True):
    server_cpu, gen_cpu = ("0", "1") if mode == "pinned" else (None, None)
    s = TlsServer(kind, root, certs, server_cpu, tls)
    try:
        env = dict(os.environ)
        if auth:
            s.enable_auth()
            env.update(BENCH_USER="bench", BENCH_PASSWORD="benchpw")
        if tls:
            env.update(BENCH_CACERT=certs[0])
        time.sleep(1)
        gen = subprocess.Popen(taskset(gen_cpu) + [GENERATOR, s.endpoint, "1000", "100",
                                                   str(total)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # Server CPU is counted from when every connection has signed in (100 bcrypt checks
        # are not part of a put's cost).
        for line in gen.stderr:
            if line.strip() == "connected":
                break
        before = s.cpu_seconds()
        out, err = gen.communicate()
        if gen.returncode != 0:
            raise RuntimeError(f"generator failed: {err}")
        r = json.loads(out)
        r["server_cpu_us_per_request"] = (s.cpu_seconds() - before) / max(r["requests"], 1) * 1e6
        if r["failed"]:
            raise RuntimeError(f"{kind}: {r['failed']} puts failed")
        return r
    finally:
        s.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--total", type=int, default=100_000)
    p.add_argument("--modes", default="unpinned,pinned")
    p.add_argument("--data-dir", default=os.path.join(ROOT, "target", "bench-data"))
    p.add_argument("--no-tls", action="store_true")
    p.add_argument("--no-auth", action="store_true")
    args = p.parse_args()
    if not os.path.exists(GENERATOR):
        sys.exit(f"build {GENERATOR} first (see its Cargo.toml)")
    os.makedirs(args.data_dir, exist_ok=True)
    certs_dir = tempfile.mkdtemp()
    certs = make_certs(certs_dir)
    rows = []
    for mode in args.modes.split(","):
        res = {"etcd": [], "cairn": []}
        for r in range(args.rounds):
            for kind in ("etcd", "cairn"):
                got = one(kind, args.data_dir, certs, mode, args.total, not args.no_tls,
                          not args.no_auth)
                log(mode, kind, r, got)
                res[kind].append(got)
        med = {k: {f: statistics.median(x[f] for x in v)
                   for f in ("requests_per_second", "p99_ms", "server_cpu_us_per_request",
                             "generator_cpu_us_per_request")}
               for k, v in res.items()}
        rows.append((mode, med))
    what = " + ".join(w for w, on in (("TLS", not args.no_tls),
                                      ("simple-token auth", not args.no_auth)) if on) or "plain"
    print(f"| {what}, 1000 clients / 100 conns, puts | etcd req/s | Cairn req/s "
          "| Cairn/etcd | p99 ms etcd / Cairn | server CPU µs/req etcd / Cairn | generator CPU µs/req |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, m in rows:
        e, c = m["etcd"], m["cairn"]
        print(f"| {mode} | {e['requests_per_second']:.0f} | {c['requests_per_second']:.0f} "
              f"| {c['requests_per_second'] / e['requests_per_second']:.2f}× "
              f"| {e['p99_ms']:.1f} / {c['p99_ms']:.1f} "
              f"| {e['server_cpu_us_per_request']:.0f} / {c['server_cpu_us_per_request']:.0f} "
              f"| {e['generator_cpu_us_per_request']:.0f} / {c['generator_cpu_us_per_request']:.0f} |")
    shutil.rmtree(certs_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
