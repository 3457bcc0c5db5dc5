"""reportutil.py: what the two benchmark reports share, bench/report.py
(bench/RESULTS.md) and bench/tls/report.py (bench/tls/RESULTS.md): the
machine's CPU and memory for the "Machine" section, and the figures of a
`wrk --latency` run.
"""
import platform
import re


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, else what platform knows of
    it; "" when neither says."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def mem_gib():
    """The machine's memory (MemTotal) in GiB; 0 when unknown."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1048576
    except OSError:
        pass
    return 0


def _ms(value, unit):
    v = float(value)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def wrk(t):
    """The figures of wrk's output t (run with --latency): requests per
    second ("rps", None when absent), latencies in ms ("lat": "50%", "75%",
    "90%", "99%" and "max", each only when present), requests done ("n"),
    non-2xx/3xx answers ("non2xx"), the socket errors line ("sock", "" when
    none) and t itself ("raw")."""
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    rps = float(m.group(1)) if m else None
    lat = {}
    for pct in ("50%", "75%", "90%", "99%"):
        m = re.search(r"^\s+" + re.escape(pct) + r"\s+([\d.]+)(us|ms|s)\b", t,
                      re.M)
        if m:
            lat[pct] = _ms(m.group(1), m.group(2))
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", t, re.M)
    if m:
        lat["max"] = _ms(m.group(1), m.group(2))
    m = re.search(r"(\d+) requests in", t)
    n = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:.*", t)
    return {"rps": rps, "lat": lat, "n": n, "non2xx": non2xx,
            "sock": m.group(0) if m else "", "raw": t}
