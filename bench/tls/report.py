#!/usr/bin/env python3
"""report.py: turn the files bench/tls/run left in its work dir into
bench/tls/RESULTS.md: the machine, the exact commands, the issue's targets
with the measured values and whether each was reached, and the figures
behind them.

usage: report.py WORKDIR RESULTS.md BINDIR
"""
import json
import os
import platform
import sys

# bench/reportutil.py, shared with bench/report.py
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import reportutil  # noqa: E402

W, OUT, BIN = sys.argv[1:4]
ENROLL_TARGET = 1000.0
ACCESS_TARGET = 20000.0
ACCESS_P99_MS = 5.0


def text(name):
    try:
        with open(os.path.join(W, name)) as f:
            return f.read().strip()
    except OSError:
        return None


def js(name):
    t = text(name)
    try:
        return json.loads(t) if t else None
    except ValueError:
        return None


SET = dict(line.split("=", 1) for line in (text("settings") or "").splitlines())
HAS_TLS = text("has_tls") == "1"


def wrk(name):
    return reportutil.wrk(text(name) or "")


def cpu(how, c, wall):
    """Cores used during a wrk run by mdmd, wrk and everything else."""
    a = [float(x) for x in (text("cpu0_%s_%s" % (how, c)) or "0 0 0").split()]
    b = [float(x) for x in (text("cpu1_%s_%s" % (how, c)) or "0 0 0").split()]
    busy, mdmd, wrk_ = (y - x for x, y in zip(a, b))
    return {"mdmd": mdmd / wall, "wrk": wrk_ / wall,
            "other": max(0.0, busy - mdmd - wrk_) / wall}


def yes(ok):
    return "reached" if ok else "**NOT reached**"


def f0(v):
    return "%s" % format(int(round(v)), ",")


def ms(v):
    return "%.2f" % v if v < 10 else "%.1f" % v if v < 100 else "%.0f" % v


out = []
p = out.append
invocation = text("invocation") or "bench/tls/run"
p("# mdm zero-trust benchmark (issue 5): enrollment over TLS, access checks")
p("")
p("Recorded on %s by `%s`. This file is written by `bench/tls/report.py` at "
  "the end of every run of `bench/tls/run`; edit the scripts, not this file."
  % (text("started"), invocation))
p("")
p("## Machine")
p("")
p("- %d CPUs (%s), %.1f GiB memory, Linux %s" % (
    os.cpu_count(), reportutil.cpu_model() or "?", reportutil.mem_gib(),
    platform.release()))
p("- load average at start %s, at end %s" % (text("loadavg.start"),
                                            text("loadavg.end")))
p("- mdmd, the client (mdm-tls-bench or wrk) and everything else on the "
  "machine share these CPUs; 'other' below is the CPU the machine spent "
  "outside mdmd and the client during a run (builds or tests of other "
  "people on the same machine): where it is large, the run was disturbed.")
p("")

# ---- targets ---------------------------------------------------------------
runs = (text("enroll_runs") or "").split()
enrolls = [d for d in (js("enroll_%s.json" % k) for k in runs) if d]
access = []
for line in (text("access_runs") or "").splitlines():
    how, c, t0, t1 = line.split()
    w = wrk("wrk_%s_%s.txt" % (how, c))
    w["cpu"] = cpu(how, c, float(t1) - float(t0))
    access.append((how, int(c), w))

p("## Targets")
p("")
p("| target | measured | |")
p("|---|---|---|")
if enrolls:
    met = [d for d in enrolls
           if d["per_s"] >= ENROLL_TARGET and d["ok"] == d["devices"]]
    p("| enrollments with CSR signing over TLS ≥ 1,000/s | %s%s | %s |" % (
        "; ".join("%s of %s devices in %.1f s = **%s/s** with %d at a time "
                  "(p50 %s ms, p99 %s ms)" % (
                      f0(d["ok"]), f0(d["devices"]), d["seconds"],
                      f0(d["per_s"]), d["threads"],
                      ms(d["latency"]["p50_ms"]), ms(d["latency"]["p99_ms"]))
                  for d in enrolls),
        "; each a new TLS connection" if HAS_TLS else
        "; **over plain HTTP: this mdmd has no --tls-cert**",
        ("reached with %s at a time" % ", ".join(
            str(d["threads"]) for d in met) if met else "**NOT reached**")
        if HAS_TLS else "not measured (no TLS)"))
for how in ("cert", "token"):
    rows = [(c, w) for h, c, w in access if h == how]
    if not rows:
        continue
    met = [c for c, w in rows
           if w["rps"] and w["rps"] >= ACCESS_TARGET and
           w["lat"].get("99%", 1e9) <= ACCESS_P99_MS and not w["non2xx"]]
    desc = ", ".join("%d conn.: %s/s, p99 %s ms" % (
        c, f0(w["rps"] or 0), ms(w["lat"].get("99%", 0))) for c, w in rows)
    p("| access checks ≥ 20,000/s with p99 ≤ 5 ms, device %s | %s | %s |" % (
        "certificate in X-Client-Cert (the gateway's path)" if how == "cert"
        else "token (Authorization: Bearer)", desc,
        ("reached at %s connections" % ", ".join(str(c) for c in met))
        if met else "**NOT reached**"))
p("")

# ---- commands -------------------------------------------------------------------
p("## Commands")
p("")
p("```")
p(invocation)
p("```")
p("")
p("with %s (see the top of `bench/tls/run`). The commands it ran, in order "
  "(`$W` is its temp dir; the server's certificate and key are made there "
  "with the openssl CLI: a P-256 CA, and a P-256 leaf for IP:127.0.0.1 and "
  "DNS:localhost; `chain.pem` is the leaf, then the CA):" % ", ".join(
      "BENCH_TLS_%s=%s" % (k, v) for k, v in (
          ("DEVICES", SET.get("DEVICES")),
          ("THREADS", "'%s'" % SET.get("THREADS")),
          ("WARMUP", SET.get("WARMUP")), ("CONNECTS", SET.get("CONNECTS")),
          ("PLAIN_DEVICES", SET.get("PLAIN_DEVICES")),
          ("ACCESS_DEVICES", SET.get("ACCESS_DEVICES")),
          ("CONNECTIONS", "'%s'" % SET.get("CONNS")),
          ("WRK_THREADS", SET.get("WRK_THREADS")),
          ("DURATION", SET.get("DURATION")))))
p("")
p("```")
p(text("commands.txt") or "")
p("```")
p("")

# ---- enrollment ---------------------------------------------------------------------
p("## 1. Enrollment with CSR signing over TLS")
p("")
p("Each device's P-256 key and CSR are made before the clock starts (a device "
  "makes its own). Then every enrollment is a new TCP connection and a full "
  "TLS handshake (OpenSSL client, server certificate verified against the "
  "CA, no session cache, no tickets), one `POST /v1/enroll` with facts "
  "(~1 KB, mdm-sim's shape) and the CSR, `Connection: close`; success is a "
  "201 with a device id, a device token and a certificate. Latency runs "
  "from `connect()` to the answer's last byte; 'connect' is `connect()` to "
  "the end of the handshake. The client runs N threads of blocking "
  "sockets; wall time is the timed phase only.")
p("")
p("| run | transport | at a time | done / asked | seconds | **per s** | "
  "p50 ms | p99 ms | max ms | connect p50 / p99 ms | errors | mdmd cores | "
  "mdmd CPU ms each | client cores | other cores |")
p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def peak_rss(name, when):
    """A line on mdmd's peak RSS (VmHWM) from the file name, if the run
    left one."""
    hwm = text(name)
    if hwm:
        p("mdmd's peak RSS (VmHWM) %s: %.0f MiB." % (when, int(hwm) / 1024))
        p("")


def cpu_ms(d):
    """mdmd's CPU milliseconds per success."""
    return (d["server"]["cpu_cores"] * d["seconds"] * 1000 / d["ok"]
            if d["ok"] else 0.0)


def enroll_row(label, d):
    if not d:
        p("| %s | - | - | failed (see the run's log) | | | | | | | | | | | |"
          % label)
        return
    l, c = d["latency"], d["connect"]
    p("| %s | %s | %d | %s / %s | %.1f | **%s** | %s | %s | %s | %s / %s | "
      "%s | %.2f | %.2f | %.2f | %.2f |" % (
          label, ("TLS (%s)" % d["tls"]) if d["transport"] == "tls"
          else "plain HTTP", d["threads"], f0(d["ok"]),
          f0(d.get("devices", d.get("requests", 0))), d["seconds"],
          f0(d["per_s"]), ms(l["p50_ms"]), ms(l["p99_ms"]), ms(l["max_ms"]),
          ms(c["p50_ms"]), ms(c["p99_ms"]),
          ", ".join("%s: %d" % kv for kv in d["errors"].items()) or "0",
          d["server"]["cpu_cores"], cpu_ms(d), d["client"]["cpu_cores"],
          d["machine"]["other_cores"]))


for k in runs:
    enroll_row("enrollment" + (" (devices for step 2)" if k == runs[0] else ""),
               js("enroll_%s.json" % k))
if js("connect.json"):
    enroll_row("reference: new connection + GET /healthz, no enrollment",
               js("connect.json"))
if js("enroll_plain.json"):
    enroll_row("reference: the same enrollments over plain HTTP (step 2's "
               "mdmd)", js("enroll_plain.json"))
p("")
if enrolls and HAS_TLS:
    d = max(enrolls, key=lambda x: x["per_s"])
    plain, conn = js("enroll_plain.json"), js("connect.json")
    busy = d["server"]["cpu_cores"] + d["client"]["cpu_cores"] + \
        d["machine"]["other_cores"]
    p("Where the two cores went in the fastest run (%d at a time): mdmd "
      "%.2f, the client %.2f, everything else %.2f (%.2f of %d in all). "
      "mdmd spent %.2f ms of CPU per enrollment over TLS%s%s. The client's "
      "own handshakes (OpenSSL 3: key exchange, verifying the server's chain) "
      "come out of the same two cores; a real fleet does that on its "
      "devices. With both cores for mdmd and nothing else limiting, its CPU "
      "per enrollment would allow about %s enrollments/s: an estimate from "
      "the figures above, not a measurement." % (
          d["threads"], d["server"]["cpu_cores"], d["client"]["cpu_cores"],
          d["machine"]["other_cores"], busy, os.cpu_count(), cpu_ms(d),
          ("; the same enrollments over plain HTTP %.2f ms" % cpu_ms(plain))
          if plain else "",
          ("; a bare TLS connection (GET /healthz) %.2f ms" % cpu_ms(conn))
          if conn else "",
          f0(os.cpu_count() * 1000 / cpu_ms(d)) if cpu_ms(d) else "?"))
    p("")
peak_rss("mdmd_tls_hwm_kb", "through the enrollments")

# ---- access ---------------------------------------------------------------------------
p("## 2. Access decisions: `GET /v1/access/check`")
p("")
p("mdmd restarted on the same data dir without TLS and with "
  "`--trusted-proxies 127.0.0.1`, as behind the gateway (nginx terminates "
  "TLS and calls mdmd over loopback HTTP). wrk (%s threads, keep-alive) "
  "sends `GET /v1/access/check?application=crm&client_app_type=browser`, "
  "rotating over the first %s enrolled devices (`bench/tls/access.lua`): "
  "their certificates URL-encoded in `X-Client-Cert` as nginx's "
  "`$ssl_client_escaped_cert`, or their device tokens. The policy "
  "`crm-needs-compliant` applies to every request and every device is "
  "compliant: each answer must be 200 (`X-MDM-Decision: allow`). wrk is a "
  "closed loop (each connection sends its next request when the answer is "
  "in): the latency is the service time at that concurrency, and wrk's own "
  "CPU comes out of the same two cores." % (SET.get("WRK_THREADS"),
                                            SET.get("ACCESS_DEVICES")))
p("")
p("| credential | connections | requests | **per s** | p50 ms | p90 ms | "
  "**p99 ms** | max ms | non-2xx | socket errors | mdmd cores | wrk cores | "
  "other cores | ≥ 20,000/s and p99 ≤ 5 ms |")
p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for how, c, w in access:
    lat, cp = w["lat"], w["cpu"]
    ok = (w["rps"] and w["rps"] >= ACCESS_TARGET and
          lat.get("99%", 1e9) <= ACCESS_P99_MS and not w["non2xx"])
    p("| %s | %d | %s | **%s** | %s | %s | **%s** | %s | %s | %s | %.2f | "
      "%.2f | %.2f | %s |" % (
          "certificate" if how == "cert" else "token", c, f0(w["n"]),
          f0(w["rps"] or 0), ms(lat.get("50%", 0)), ms(lat.get("90%", 0)),
          ms(lat.get("99%", 0)), ms(lat.get("max", 0)), f0(w["non2xx"]),
          w["sock"].replace("Socket errors: ", "") or "0", cp["mdmd"],
          cp["wrk"], cp["other"],
          "yes" if ok else "no"))
p("")
peak_rss("mdmd_plain_hwm_kb", "after the access runs")

# ---- profiles ---------------------------------------------------------------------------
profs = [(n, t) for n, t in (
    ("enrollment over TLS", "perf_enroll.txt"),
    ("access checks with certificates", "perf_access_cert.txt"),
    ("access checks with tokens", "perf_access_token.txt"))
    if text(t)]
if profs:
    p("## Where mdmd's time goes")
    p("")
    p("`perf record -a -F 99 --call-graph dwarf` for 5 s during an extra "
      "run of each kind (not a measured run); `bench/tls/perfsum.py` counts "
      "mdmd's samples from `perf script` (all its threads, the short-lived "
      "connection threads included): its self time by shared object, the "
      "system calls it was in, and the named functions with the most samples "
      "in them or below (each counted once per sample).")
    p("")
    for name, t in profs:
        p("%s:" % name)
        p("")
        p("```")
        p(text(t))
        p("```")
        p("")

with open(OUT, "w") as f:
    f.write("\n".join(out).rstrip() + "\n")
