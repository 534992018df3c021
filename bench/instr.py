#!/usr/bin/python3
"""Instructions per request, counted by valgrind's callgrind: a benchmark
that does not depend on how busy the machine is.

For each module given (--module, repeatable: e.g. the build of main and of
a branch) and each variant of bench/e2e.py (--variants, default
base,certauthz), one httpd -X runs under callgrind, collecting only inside
ap_process_async_request (the request, not the handshake or startup).
After a warm-up, the counters are zeroed (callgrind_control -z), bench/
loadgen sends --requests requests over one TLS keep-alive connection, and
the server is stopped.  The table gives instructions (Ir) per request, and
for each module certauthz minus base: what the module's hooks and provider
cost a request.  The same binaries and inputs give the same counts, run
after run, loaded machine or not.

Standard library only; run with /usr/bin/python3.  Needs valgrind.  Only
127.0.0.1; every wait is bounded; every httpd started is stopped on exit.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402  (the server setup of the end-to-end benchmark)


def total_ir(path):
    for line in Path(path).read_text(errors="replace").splitlines():
        m = re.match(r"(?:summary|totals):\s+(\d+)", line)
        if m:
            return int(m.group(1))
    e2e.die("no totals in %s" % path)


def one_run(args, module, variant, tmp):
    """Ir per request of one variant served by one module."""
    a = argparse.Namespace(**vars(args))
    a.module = module
    srv = e2e.Httpd(a, tmp / "server", args.certs)
    # every run has the same <Location>s (base answers the readiness probe)
    urls = e2e.variant_setup(a, srv, args.certs, args.variants)
    url, expect = urls[variant]
    srv.port = e2e.free_port()
    conf = srv.root / "conf" / "httpd.conf"
    e2e.write(conf, srv.config())
    out = tmp / "callgrind.out"
    # httpd -X as root would switch to User nobody, who could not write
    # the counts to a file root created: run it all as nobody
    cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=ap_process_async_request",
           "--callgrind-out-file=%s" % out, args.httpd, "-X",
           "-d", str(srv.root), "-f", str(conf)]
    if os.geteuid() == 0:
        for d, _dirs, files in os.walk(tmp):
            os.chmod(d, 0o777)
            for f in files:
                os.chmod(os.path.join(d, f), 0o666)
        cmd = ["runuser", "-u", "nobody", "--"] + cmd
    log = open(tmp / "valgrind.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=str(tmp))
    srv.proc = proc
    e2e.CLEANUP.servers.append(srv)
    err = srv._wait_ready(time.monotonic() + args.start_timeout)
    if err:
        e2e.die("httpd under valgrind did not start: %s\n%s" % (
            err, (tmp / "valgrind.log").read_text(errors="replace")[-3000:]))
    # warm-up, then count from zero
    for n in (args.warmup, args.requests):
        if n is args.requests:
            e2e.run(["callgrind_control", "-z", str(proc.pid)], timeout=120)
        a.max_requests = n
        cmd = e2e.loadgen_cmd(a, args.certs, srv.port, url, 600, 1, expect)
        res = e2e.run_loadgen(cmd, 600)
        if res["requests"] != n or res["errors"] or res["wrong"]:
            e2e.die("loadgen on %s: %r" % (variant, res))
    srv.stop()
    if not out.exists():
        e2e.die("callgrind wrote nothing; see %s" % (tmp / "valgrind.log"))
    return total_ir(out) / args.requests


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", action="append",
                    help="a mod_certauthz.so (repeat to compare builds; "
                    "default: the build directory's)")
    ap.add_argument("--variants", default="base,certauthz")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--map-lines", type=int, default=10000,
                    help="lines of the certauthz variant's map (exact rules "
                    "are found by hash: the count barely matters)")
    ap.add_argument("--client-selector", default="email")
    ap.add_argument("--start-timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--httpd", default=os.environ.get("CERTAUTHZ_HTTPD",
                                                      "/usr/sbin/apache2"))
    ap.add_argument("--modules-dir", default=os.environ.get(
        "CERTAUTHZ_HTTPD_MODULES", "/usr/lib/apache2/modules"))
    ap.add_argument("--loadgen",
                    default=str(e2e.BUILDDIR / "bench" / "loadgen"))
    ap.add_argument("--mkcert", default=str(e2e.BUILDDIR / "t" / "mkcert"))
    args = ap.parse_args()
    args.module = args.module or [str(e2e.BUILDDIR / ".libs" /
                                      "mod_certauthz.so")]
    args.variants = [v for v in args.variants.split(",") if v]
    if "base" not in args.variants:
        args.variants.insert(0, "base")
    if not (1 <= args.requests <= 10 ** 6 and 1 <= args.warmup <= 10 ** 5
            and 100 <= args.map_lines <= 2 * 10 ** 6):
        ap.error("an option is out of range")
    args.max_requests = args.requests + args.warmup
    args.requests_per_conn = 0
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            e2e.die("%s not found (Debian: apt-get install valgrind)" % tool)
    for path in args.module + [args.loadgen, args.mkcert, args.httpd]:
        if not os.path.exists(path):
            e2e.die("not found: %s (make bench/loadgen t/mkcert)" % path)

    top = Path(tempfile.mkdtemp(prefix="certauthz-instr-"))
    os.chmod(top, 0o755)
    if args.keep:
        e2e.log("keeping %s" % top)
    else:
        e2e.CLEANUP.dirs.append(top)
    args.certs = e2e.make_certs(top, args.mkcert)
    for c in args.certs.values():
        for p in (c.crt, c.key):
            os.chmod(p, 0o644)
    e2e.log("callgrind, %d requests after %d of warm-up, one keep-alive "
            "connection; Ir counted inside ap_process_async_request"
            % (args.requests, args.warmup))
    table = {}
    for i, module in enumerate(args.module):
        for v in args.variants:
            tmp = top / ("m%d-%s" % (i, v))
            tmp.mkdir()
            t0 = time.monotonic()
            table[module, v] = one_run(args, module, v, tmp)
            e2e.log("  %s %s: %.0f Ir/request (%.0f s)" % (
                module, v, table[module, v], time.monotonic() - t0))
    e2e.log("\n%-60s %s" % ("module", "  ".join("%12s" % v
                                                 for v in args.variants))
            + ("  certauthz-base" if {"base", "certauthz"} <= set(args.variants)
               else ""))
    for module in args.module:
        row = "  ".join("%12.0f" % table[module, v] for v in args.variants)
        if {"base", "certauthz"} <= set(args.variants):
            row += "  %14.0f" % (table[module, "certauthz"]
                                 - table[module, "base"])
        e2e.log("%-60s %s" % (module, row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
