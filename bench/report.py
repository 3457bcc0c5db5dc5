#!/usr/bin/env python3
"""report.py: turn the files bench/run left in its work dir into
bench/RESULTS.md: the machine, the exact commands, a table of the issue's
targets with the measured values and whether each was reached, and the
figures behind them.

usage: report.py WORKDIR RESULTS.md DEVICES RATE DURATION CONNECTIONS BINDIR
"""
import json
import os
import platform
import re
import sys

import reportutil

W, OUT, DEVICES, RATE, DURATION, CONNS, BIN = sys.argv[1:8]
DEVICES, RATE, DURATION, CONNS = int(DEVICES), float(RATE), float(DURATION), int(CONNS)
P99_MAX_MS = 50.0
STEP_DURATION_TEXT = "steps of " + os.environ.get("BENCH_STEP_DURATION", "15") + " s"
RSS_MAX_MIB = 256.0


def load(name):
    path = os.path.join(W, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read().rstrip()
    if name.endswith(".json"):
        return json.loads(text) if text else None
    return text


def wrk(name):
    return reportutil.wrk(load(name) or "")


def yes(ok):
    return "reached" if ok else "**NOT reached**"


def errs(d):
    return sum(v for k, v in d["errors"].items() if k not in ("200", "201"))


def ms(v):
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def num(v, digits=2):
    return "–" if v is None or v < 0 else f"{v:.{digits}f}"


def run_ok(d):
    return (d["checkins_per_s"] >= 0.99 * d["target_rate"] and d["unsent"] <= 0.001 * d["due"]
            and d["latency"]["p99_ms"] <= P99_MAX_MS and errs(d) == 0)


enroll = load("enroll.json")
cold = load("checkin_cold.json")
warm = load("checkin_warm.json")
overload = load("overload.json")
crash = load("crash.json")
verify = load("verify.json")
verify_rc = load("verify.rc")
steps = [l.split() for l in (load("steps") or "").splitlines() if l.strip()]
hwm1 = int(load("mdmd_hwm_kb") or 0) / 1024
hwm2 = int(load("mdmd2_hwm_kb") or 0) / 1024
nginx1, nginx_auto = wrk("wrk_nginx_1.txt"), wrk("wrk_nginx_auto.txt")
wrk_checkin, wrk_healthz = wrk("wrk_mdmd_checkin.txt"), wrk("wrk_mdmd_healthz.txt")
agent_size = int(load("agent_size") or 0)
agent_size_stripped = int(load("agent_size_stripped") or 0)
agent_rss = dict(l.split() for l in (load("agent_rss") or "").splitlines() if l.strip())
commands = load("commands.txt") or ""
started = load("started")
disk = (load("disk_warm") or "").split()
perf_dso, perf_sym = load("perf_dso.txt"), load("perf_sym.txt")
cpoll = load("commands_poll.json")
cpush = load("commands_push.json")
penroll = load("push_enroll.json")
POLL_INTERVAL = float(os.environ.get("BENCH_POLL_INTERVAL", "30"))

step_rates_ok = [int(r) for r, res in steps if res == "ok"]
runs_at_target = [d for d in (cold, warm) if d]
max_sustainable = max([int(d["target_rate"]) for d in runs_at_target if run_ok(d)] + step_rates_ok,
                      default=None)
ceiling = max(x["rps"] or 0 for x in (nginx1, nginx_auto))
ceiling_name = "worker_processes 1" if (nginx1["rps"] or 0) >= (nginx_auto["rps"] or 0) else "worker_processes auto (2)"
rss_peak = max(hwm1, max((d["server"]["hwm_mib"] for d in [enroll] + runs_at_target if d), default=0))
all_ok_rss = rss_peak <= RSS_MAX_MIB

L = []
a = L.append
a("# mdm benchmark results")
a("")
a(f"Recorded on {started} by `{load('invocation') or 'make bench'}`. "
  "This file is written by `bench/report.py` at the end of every run of `bench/run`; edit the "
  "scripts, not this file.")
a("")
a("## Machine")
a("")
mem = reportutil.mem_gib()
a(f"- {os.cpu_count()} CPUs ({reportutil.cpu_model() or 'unknown'}), "
  f"{f'{mem:.1f} GiB' if mem else '?'} memory, Linux {platform.release()}")
a(f"- load average at start {load('loadavg.start')}, at end {load('loadavg.end')}")
a("- simulator, server, nginx and wrk all share these CPUs; 'other load' below is the CPU the")
a("  machine spent outside mdmd and mdm-sim during a run (builds or tests of other people on the")
a("  same machine, the kernel's own threads): where it is large, the run was disturbed.")
a("")
a("## Command")
a("")
a("```")
a(load("invocation") or "make bench")
a("```")
a("")
a(f"(`make bench` builds, then runs `bench/run`) with BENCH_DEVICES={DEVICES} BENCH_RATE={RATE:.0f} BENCH_DURATION={DURATION:.0f} "
  f"BENCH_CONNECTIONS={CONNS} (see the top of `bench/run`). The commands it ran, in order "
  "(`$W` is its temp dir):")
a("")
a("```")
a(commands)
a("```")
a("")

a("## Targets (issue 2)")
a("")
a("| target | measured | |")
a("|---|---|---|")
if enroll:
    a(f"| {DEVICES:,} devices enrolled | {enroll['enrolled']:,} in {enroll['seconds']:.1f} s = "
      f"**{enroll['enrollments_per_s']:.0f} enrollments/s** (p99 {ms(enroll['latency']['p99_ms'])} ms) | "
      f"{yes(enroll['enrolled'] == DEVICES)} |")
for label, d in (("cold: the first check-in of every device after its enrollment", cold),
                 ("warm: every device's token verified once before", warm)):
    if not d:
        continue
    l = d["latency"]
    a(f"| ≥ {RATE:,.0f} check-ins/s for {DURATION:.0f} s with p99 ≤ {P99_MAX_MS:.0f} ms, {label} | "
      f"**{d['checkins_per_s']:,.0f}/s**, p50 {ms(l['p50_ms'])} ms, **p99 {ms(l['p99_ms'])} ms**, "
      f"max {ms(l['max_ms'])} ms; {d['ok']:,} of {d['due']:,} due check-ins answered "
      f"({d['unsent']:,} still waiting for a free connection when the {DURATION:.0f} s ended), "
      f"{errs(d)} errors | {yes(run_ok(d))} |")
if verify and crash:
    a(f"| every acknowledged check-in durable | mdmd killed with -9 during a check-in run, after {crash['ok']:,} "
      f"acknowledged check-ins ({crash['changed_ok']:,} with changed facts); after the restart all {verify['devices']:,} devices "
      f"read back: {verify['ok']:,} as acknowledged, {verify['bad']} not "
      f"({verify['devices_with_changed_facts']:,} devices carry changed facts from some run) | "
      f"{yes(verify_rc == '0' and verify['bad'] == 0 and verify['ok'] == verify['devices'])} |")
a(f"| mdmd RSS ≤ {RSS_MAX_MIB:.0f} MiB | peak (VmHWM) **{rss_peak:.0f} MiB** over enrollment and all "
  f"check-in runs; {hwm2:.0f} MiB after the restart, verification and wrk | {yes(all_ok_rss)} |")
if warm and ceiling:
    a(f"| check-in rate as a ratio of nginx's static 200 | nginx {ceiling:,.0f} req/s ({ceiling_name}); "
      f"{RATE:,.0f}/s target: {RATE / ceiling:.2f}; highest sustainable "
      f"{(max_sustainable or 0):,}/s: **{(max_sustainable or 0) / ceiling:.3f}**; raw capacity "
      f"{overload['checkins_per_s'] if overload else 0:,.0f}/s: {(overload['checkins_per_s'] if overload else 0) / ceiling:.3f} | "
      "reported |")
a(f"| agent RSS and binary size | `build/bin/mdm-agent` {agent_size / 1024:.0f} KiB, stripped "
  f"{agent_size_stripped / 1024:.0f} KiB; max RSS "
  + ", ".join(f"`{k.replace('_', ' --')}` {int(v) / 1024:.1f} MiB" for k, v in agent_rss.items())
  + " | reported |")
a("")
disturbed = [(n, d["machine"]["other_cores"]) for n, d in
             (("enrollment", enroll), ("cold", cold), ("warm", warm), ("overload", overload))
             if d and d.get("machine", {}).get("other_cores", 0) > 0.2]
if disturbed:
    a("**The machine was not quiet:** other processes used "
      + ", ".join(f"{c:.2f} cores during the {n} run" for n, c in disturbed)
      + f" (of {os.cpu_count()}); mdmd and the simulator had that much less. Figures from a quiet "
      "machine will be better; the verdicts above are for this run as it was.")
    a("")
a("The p99 target is judged on the latency from each check-in's due time (open loop: the")
a("simulator sends check-in k at t0 + k/rate whatever the server does, so queueing in front of")
a("a slow server counts), over every check-in of the run; check-ins the simulator could not even")
a("send before the run's end count against the rate.")
a("")

reeval_lines = (load("reeval.log") or "").splitlines()
reeval_times = [load("reeval_first.time"), load("reeval_second.time")]
if reeval_lines:
    a("## Targets (issue 3)")
    a("")
    a("| target | measured | |")
    a("|---|---|---|")
    for label, line, t in zip(("a new 5-rule compliance policy", "the same policy made stricter (os.version >= 13)"),
                              reeval_lines, reeval_times):
        m = re.search(r"(\d+) devices evaluated, (\d+) changed state, in (\d+) ms", line)
        if not m:
            continue
        n, changed, took = int(m.group(1)), int(m.group(2)), int(m.group(3))
        wall = float(t) * 1000 if t else float("nan")
        a(f"| re-evaluate {DEVICES:,} devices after a policy change in < 2 s: {label} | "
          f"**{n:,} devices in {took:,} ms** (evaluated and changes stored; {changed:,} changed state); "
          f"the PUT answered in {wall:,.0f} ms | {yes(n == DEVICES and took < 2000)} |")
    a("")

a("## Targets (issue 4)")
a("")
a("| target | measured | |")
a("|---|---|---|")
if cpoll:
    l = cpoll["latency"]
    never = cpoll["never_acknowledged"]
    limit_s = 2 * POLL_INTERVAL
    reached = (never == 0 and cpoll["commands_created"] == DEVICES and l["n"] > 0
               and l["max_ms"] < limit_s * 1000)
    a(f"| {DEVICES:,} devices, polling only (no MQTT): every device acknowledges a bulk lock within "
      f"two check-in intervals (2 × {POLL_INTERVAL:.0f} s) | {cpoll['commands_created']:,} commands created "
      f"(bulk POST answered in {cpoll['bulk_post_ms']:,.0f} ms); {cpoll['acknowledged']:,} acknowledged, "
      f"**{never:,} never arrived**; from the bulk POST's call to each acknowledgement: "
      f"p50 **{l['p50_ms'] / 1000:.1f} s**, p99 **{l['p99_ms'] / 1000:.1f} s**, max **{l['max_ms'] / 1000:.1f} s** "
      f"| {yes(reached)} |")
else:
    a(f"| {DEVICES:,} devices, polling only (no MQTT): every device acknowledges a bulk lock within "
      f"two check-in intervals (2 × {POLL_INTERVAL:.0f} s) | not run | **NOT reached** |")
if cpush:
    l, w = cpush["latency"], cpush["wakeup_latency"]
    never = cpush["never_acknowledged"]
    n = cpush["devices"]
    reached = never == 0 and l["n"] == n and l["p99_ms"] <= 2000
    a(f"| 10,000 devices over MQTT push: p99 ≤ 2 s from the API call to the acknowledgement, none lost | "
      f"{n:,} devices, each with its own MQTT session; {cpush['commands_created']:,} commands, "
      f"{cpush['acknowledged']:,} acknowledged, **{never:,} never arrived**; from the bulk POST's call: "
      f"p50 **{l['p50_ms'] / 1000:.2f} s**, p99 **{l['p99_ms'] / 1000:.2f} s**, max **{l['max_ms'] / 1000:.2f} s** "
      f"(wake-ups received: p50 {w['p50_ms'] / 1000:.2f} s, p99 {w['p99_ms'] / 1000:.2f} s) | {yes(reached)} |")
else:
    a("| 10,000 devices over MQTT push: p99 ≤ 2 s from the API call to the acknowledgement | not run "
      "(no mosquitto or auth plugin, or BENCH_PUSH_DEVICES=0) | **NOT reached** |")
a("")
if cpoll:
    sv, cl = cpoll.get("server", {}), cpoll["checkin_latency"]
    a(f"How: `mdm-sim --commands-poll` creates one `lock` for every active device with "
      f"`POST /v1/commands` (selector `{{}}`), then checks the {cpoll['devices']:,} devices in "
      f"round-robin, each once per {cpoll['interval_s']:.0f} s ({cpoll['checkin_rate']:,.0f} check-ins/s, "
      f"spread evenly, the first right after the bulk answer). The interval is the simulator's pacing "
      f"(mdmd's `--checkin-interval` only tells real agents). A device whose check-in answers "
      f"`pending_commands` > 0 does `GET /v1/agent/commands`, then `POST /v1/agent/commands/{{id}}/result` "
      f"`acknowledged` for each command"
      + (", then `completed`" if cpoll.get("complete") else "")
      + f"; the latency ends at the acknowledgement's 2xx. The run stops when every command is "
      f"acknowledged or after {cpoll['duration_s']:.0f} s ({cpoll['seconds']:.1f} s here). "
      f"{cpoll['checkins']:,} check-ins (p99 {ms(cl['p99_ms'])} ms from due), {cpoll['fetches']:,} fetches, "
      f"{cpoll['completed']:,} completed, {errs(cpoll)} errors; mdmd {num(sv.get('cpu_cores', -1))} cores, "
      f"RSS {num(sv.get('rss_mib', -1), 0)} MiB. Since every device polls once per interval, the "
      f"expected p50 is about half an interval and the max about one interval plus the fetch and "
      f"acknowledgement round trips.")
    a("")

if cpush:
    sv, mq = cpush.get("server", {}), cpush["mqtt"]
    en = f" ({penroll['enrollments_per_s']:,.0f} enrollments/s with broker credentials)" if penroll else ""
    a(f"How (push): a second mdmd with `--mqtt` (default `--mqtt-rate` 10,000/s) and a mosquitto with "
      f"mdm's auth plugin (deploy/mosquitto/). {cpush['devices']:,} devices enroll{en}; `mdm-sim "
      f"--commands-push` opens one MQTT 3.1.1 session per device with the device's own credentials "
      f"(client id = username = device id, persistent session) and subscribes each to its own topic "
      f"({mq['subscribed']:,} subscribed, {mq['refused']} refused), then creates one bulk `lock`. Each "
      f"wake-up makes its device fetch its commands over HTTP at once and acknowledge"
      + (" then complete" if cpush.get("complete") else "")
      + f" each ({cpush['connections']} HTTP connections); the latency counts from the bulk POST's call "
      f"(answered in {cpush['bulk_post_ms']:,.0f} ms) to each acknowledgement's 2xx. Devices would "
      f"poll every {cpush['interval_s']:,.0f} s, so polling delivered {cpush['checkins']:,} of them at most. "
      f"{mq['wakeups_received']:,} wake-ups received, {mq['disconnects']} sessions lost, "
      f"{errs(cpush)} errors; mdmd {num(sv.get('cpu_cores', -1))} cores, RSS {num(sv.get('rss_mib', -1), 0)} MiB.")
    a("")

a("## Check-in runs")
a("")
a(f"{DEVICES:,} devices, {CONNS} keep-alive connections, 1% of check-ins with changed facts "
  "(5% in the crash run), facts about 1 KB per device.")
a("")
a("| run | target/s | achieved/s | p50 ms | p90 ms | p99 ms | max ms | service p99 ms | unsent | errors | mdmd cores | sim cores | other cores | ctx sw/req | mdmd RSS MiB |")
a("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
names = [("cold (first check-ins)", cold), ("warm", warm)]
names += [(f"step {r}", load(f"step_{r}.json")) for r, _ in steps]
names += [("overload (capacity)", overload), ("crash run (killed)", crash)]
for name, d in names:
    if not d:
        continue
    l, s = d["latency"], d["service_time"]
    sv, sim, m = d.get("server", {}), d["simulator"], d.get("machine", {})
    a(f"| {name} | {d['target_rate']:,.0f} | {d['checkins_per_s']:,.0f} | {ms(l['p50_ms'])} | {ms(l['p90_ms'])} | "
      f"{ms(l['p99_ms'])} | {ms(l['max_ms'])} | {ms(s['p99_ms'])} | {d['unsent']:,} | {errs(d)} | "
      f"{num(sv.get('cpu_cores', -1))} | {sim['cpu_cores']:.2f} | {m.get('other_cores', 0):.2f} | "
      f"{num(sv.get('context_switches_per_request', -1), 1)} | {num(sv.get('rss_mib', 0), 0) if sv.get('rss_mib') else '–'} |")
a("")
a("\"service\" is the time from the request's send to its answer; the other latencies count from")
a("the due time. \"unsent\": due before the run's end but never sent, because every connection was")
a("waiting on the server. The overload run offers 40,000/s to measure raw capacity, whatever the")
a("latency. In the crash run the unsent check-ins and the errors (requests in flight at the kill)")
a("are expected.")
a("")
if steps:
    a(f"Rate search ({STEP_DURATION_TEXT}; a run passes with ≥ 99% of its rate achieved, "
      f"p99 ≤ {P99_MAX_MS:.0f} ms, no errors; upwards from the target until a step fails, or downwards "
      "until one passes when the warm run failed): "
      + ", ".join(f"{int(r):,}/s {'passed' if res == 'ok' else 'failed'}" for r, res in steps)
      + (f". **Highest sustainable rate measured: {max_sustainable:,}/s.**" if max_sustainable
         else ". **No rate tried was sustainable.**"))
    a("")
if warm:
    a("Per second of the warm run (by due time): the slowest check-in (ms), and how many took over 50 ms:")
    a("")
    a("```")
    tl = warm["timeline"]
    a(" ".join(f"{t[3]:.0f}" for t in tl))
    a(" ".join(str(t[2]) for t in tl))
    a("```")
    a("")
if cold:
    a("Per second of the cold run: the slowest check-in (ms):")
    a("")
    a("```")
    a(" ".join(f"{t[3]:.0f}" for t in cold["timeline"]))
    a("```")
    a("")
if len(disk) == 4 and warm:
    writes = int(disk[2]) - int(disk[0])    # /proc/diskstats: writes completed,
    sectors = int(disk[3]) - int(disk[1])   # sectors written
    n = warm["ok"]
    a(f"Disk during the warm run: {sectors * 512 / 1e6:.0f} MB written in {writes:,} writes "
      f"({sectors * 512 / 1e6 / warm['machine']['wall_s']:.0f} MB/s): "
      f"{sectors * 512 / max(n, 1) / 1024:.1f} KiB and {writes / max(n, 1):.2f} writes per check-in.")
    a("")

a("## References (wrk -t2 -c64 -d10s, same machine)")
a("")
a("| what | req/s | p50 ms | p99 ms | non-2xx |")
a("|---|---|---|---|---|")
for name, x in (("nginx `return 200 \"ok\"`, worker_processes 1", nginx1),
                ("nginx `return 200 \"ok\"`, worker_processes auto (2)", nginx_auto),
                ("mdmd `GET /healthz` (HTTP layer, no store)", wrk_healthz),
                ("mdmd `POST /v1/agent/checkin`, one device, unchanged facts", wrk_checkin)):
    a(f"| {name} | {x['rps'] or 0:,.0f} | {x['lat'].get('50%', 0):.2f} | {x['lat'].get('99%', 0):.2f} | {x['non2xx']} |")
a("")
a(f"The machine's ceiling is taken as the better nginx figure, {ceiling:,.0f} req/s. wrk is closed-loop")
a("(64 requests always outstanding), so its latencies are not comparable with the simulator's.")
a("")

if perf_dso or perf_sym:
    a("## Where mdmd's time goes")
    a("")
    a(f"`perf record -F 199 -g -p <mdmd>` for 10 s during an extra run at {RATE:,.0f}/s (warm), self time:")
    a("")
    a("```")
    a(perf_dso or "")
    a("")
    a(perf_sym or "")
    a("```")
    a("")

a("## Notes")
a("")
a("- Durability is tested against a process crash (kill -9), not a power cut: data that reached")
a("  the kernel survives a kill -9 whatever SQLite's `synchronous` setting. That acknowledged")
a("  check-ins also survive a power cut rests on `PRAGMA synchronous=FULL` in")
a("  `src/store/store_sqlite.c` (an fsync of the WAL before each group commit is answered).")
a("- The simulator checks every device after the restart: its stored facts must be the")
a("  generation the server last acknowledged or a later one that was in flight at the kill, and")
a("  its `last_seen` no older than its last acknowledged check-in.")
a("- The cold run pays one ES256 signature check per device (the first check-in of each token);")
a("  later check-ins hit mdmd's verified-token cache.")
a("")

with open(OUT, "w") as f:
    f.write("\n".join(L))
print(f"report: {OUT}", file=sys.stderr)
