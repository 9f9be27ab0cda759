#!/usr/bin/env python3
"""Turns one bench/run.sh run into bench/results/<stamp>.md and the data files plot.gp draws.

usage: report.py RUN_DIR RESULTS_DIR STAMP

RUN_DIR holds what run.sh wrote: meta.tsv, servers.tsv, scenarios.tsv, raw.jsonl (one line per
wrk run), memory.tsv, startup.tsv, notes.txt. Every figure is a median over the runs, with
its min-max; ratios are medians of per-round ratios (both servers measured in the same round,
minutes apart at most), which is what holds on a shared, noisy machine.
"""
import json
import os
import statistics
import sys
from collections import defaultdict

run_dir, results_dir, stamp = sys.argv[1:4]
plot_dir = os.path.join(run_dir, "plot")
os.makedirs(plot_dir, exist_ok=True)


def read_tsv(name):
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


meta = {row[0]: row[1] for row in read_tsv("meta.tsv")}
SERVER_FIELDS = ["id", "kind", "role", "seed", "label", "args", "port", "cmd", "settings"]
servers = [dict(zip(SERVER_FIELDS, row)) for row in read_tsv("servers.tsv")]
# Comparators first, then Prefork by worker class (in the order tried) and worker count.
classes = list(dict.fromkeys(s["args"].split()[0] for s in servers if s["kind"] == "prefork"))
servers.sort(key=lambda s: (classes.index(s["args"].split()[0]), int(s["args"].split()[1]))
             if s["kind"] == "prefork" else (-1, 0))
by_id = {s["id"]: s for s in servers}
SCENARIO_FIELDS = ["id", "path", "conns", "close", "body", "sweep", "what"]
scenarios = [dict(zip(SCENARIO_FIELDS, row)) for row in read_tsv("scenarios.tsv")]
with open(os.path.join(run_dir, "raw.jsonl")) as f:
    raw = [json.loads(line) for line in f if line.strip()]
notes_path = os.path.join(run_dir, "notes.txt")
notes = open(notes_path).read().splitlines() if os.path.exists(notes_path) else []
clk_tck = float(meta.get("clk_tck", 100))
main_servers = [s for s in servers if s["role"] == "main"]
prefork_main = [s for s in main_servers if s["kind"] == "prefork"]
comparators = [by_id[i] for i in ("gunicorn-sync", "gunicorn-gthread", "kestrel") if i in by_id]


# --- numbers -------------------------------------------------------------------------------

def rps(r):
    w = r["wrk"]
    return w["requests"] / (w["duration_us"] / 1e6) if w and w["duration_us"] else None


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values), len(values)


closed = defaultdict(list)  # (server, scenario) -> runs
paced = defaultdict(list)  # server -> runs
for r in raw:
    (paced[r["server"]] if r["type"] == "paced" else closed[(r["server"], r["scenario"])]).append(r)


def median(sp):
    return None if sp is None else sp[0]


def throughput(server, scenario):
    return spread([rps(r) for r in closed.get((server, scenario), [])])


def per_round_ratio(a, b, scenario):
    """Median of a/b over the rounds in which both ran: the noise of one round hits both."""
    ra = {r["round"]: rps(r) for r in closed.get((a, scenario), [])}
    rb = {r["round"]: rps(r) for r in closed.get((b, scenario), [])}
    return spread([ra[k] / rb[k] for k in ra if k in rb and ra[k] and rb[k]])


def latency(server, scenario, key):
    return spread([r["wrk"]["latency_us"][key] / 1000 for r in closed.get((server, scenario), []) if r["wrk"]])


def client_cpu(r):
    """wrk's user + system CPU seconds (from /usr/bin/time), or None if it did not report."""
    return None if r["client_user_s"] is None else r["client_user_s"] + r["client_sys_s"]


def cpu_per_100k(server, scenario):
    runs = [r for r in closed.get((server, scenario), []) if r["wrk"] and r["wrk"]["requests"]]
    srv = spread([r["server_ticks"] / clk_tck / r["wrk"]["requests"] * 1e5 for r in runs])
    cli = spread([client_cpu(r) / r["wrk"]["requests"] * 1e5 for r in runs if client_cpu(r) is not None])
    cores = spread([client_cpu(r) / (r["wrk"]["duration_us"] / 1e6) for r in runs if client_cpu(r) is not None])
    return srv, cli, cores


def errors(runs):
    total = defaultdict(int)
    for r in runs:
        if r["wrk"] is None:
            total["wrk failed"] += 1
            continue
        for k, v in r["wrk"]["errors"].items():
            total["non-2xx" if k == "status" else k] += v
    return ", ".join(f"{k} {v:,}" for k, v in total.items() if v) or "none"


memory = defaultdict(dict)  # server -> phase -> (pss_kb, [rss_kb master, workers...])
for row in read_tsv("memory.tsv"):
    memory[row[0]][row[1]] = (int(row[2]), [int(x.split(":")[1]) for x in row[3:]])
startup = defaultdict(list)
for row in read_tsv("startup.tsv"):
    startup[row[0]].append(float(row[1]))


# --- formatting ----------------------------------------------------------------------------

def fmt_n(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def fmt_spread(sp, digits=0, unit=""):
    if sp is None:
        return "—"
    med, lo, hi, n = sp
    if n == 1:
        return f"{med:,.{digits}f}{unit}"
    return f"{med:,.{digits}f}{unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def fmt_short(sp):
    """18.8k ±3%: the median and half its min-max range, for the one-screen table."""
    if sp is None:
        return "—"
    med, lo, hi, n = sp
    text = f"{med / 1000:,.1f}k" if med >= 1000 else f"{med:,.0f}"
    return text if n == 1 or med == 0 else f"{text} ±{(hi - lo) / 2 / med * 100:.0f}%"


def fmt_ratio(sp, short=False):
    if sp is None:
        return "—"
    med, lo, hi, n = sp
    return f"{med:.2f}×" if short or n == 1 else f"{med:.2f}× ({lo:.2f}–{hi:.2f})"


def mib(kb):
    return f"{kb / 1024:,.1f} MiB"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def scenario(id_):
    return next((s for s in scenarios if s["id"] == id_), None)


def paced_percentiles(server):
    runs = [r["wrk"]["paced_us"] for r in paced.get(server, []) if r["wrk"] and r["wrk"]["paced_us"]]
    keys = ["p50", "p75", "p90", "p99", "p99_9", "p99_99", "max"]
    return {k: spread([p[k] / 1000 for p in runs]) for k in keys} if runs else None


def paced_rate(server):
    return spread([rps(r) for r in paced.get(server, [])])


# --- the results file ----------------------------------------------------------------------
# Blocks (a heading, a paragraph, a table, a list), written one blank line apart.

doc = []
mode = meta.get("mode", "?")
doc.append(f"# Prefork benchmark: {meta.get('host')}, {meta.get('started')} ({mode} run)")
doc.append(
    f"`{meta.get('command')}` on {meta.get('cores')} cores ({meta.get('cpu')}), Prefork {meta.get('prefork_commit')}; "
    f"{meta.get('runs')} run(s) of {meta.get('duration')} s per scenario and server, rounds interleaving the servers; "
    f"took {meta.get('elapsed_s', '?')} s. Load average {meta.get('load_start')} before, {meta.get('load_end')} after: "
    "the machine is shared, so read the ratios (taken within one round) before the absolute figures. "
    "Loopback only; wrk and the servers share the cores.")

# The seed's table.
SEED_ROWS = [("single", "single process"), ("multi", "multi-process"),
             ("nonblocking", "non-blocking I/O (epoll)"), ("gunicorn", "Gunicorn")]
seed_cols = [c for c in ("hello-ka-50", "hello-close-50", "hello-ka-500", "slow-50") if scenario(c)]
doc.append("## At a glance (the seed's table)")
doc.append("Requests/s, median ±half the min–max range over the runs. "
           + "; ".join(f"**{c}**: {scenario(c)['what']}" for c in seed_cols) + ".")
header = ["server"] + seed_cols + [f"p99 at {meta.get('paced_rate')} req/s", "memory (PSS)", "first request"]
rows = []


def glance_row(label, s):
    pp = paced_percentiles(s["id"])
    mem = memory.get(s["id"], {}).get("load")
    st = spread(startup.get(s["id"], []))
    return ([label] + [fmt_short(throughput(s["id"], c)) for c in seed_cols]
            + [fmt_n(median(pp["p99"]), 2) + " ms" if pp else "—",
               mib(mem[0]) if mem else "—",
               fmt_n(median(st)) + " ms" if st else "—"])


for seed, title in SEED_ROWS:
    s = next((x for x in servers if x["seed"] == seed), None)
    if s is None:
        rows.append([f"**{title}**: not available (see Notes)"] + [""] * (len(header) - 1))
    else:
        rows.append(glance_row(f"**{title}**: {s['label']}", s))
for s in main_servers:
    if s["seed"] in ("-", "ceiling"):
        rows.append(glance_row(f"reference: {s['label']}", s))
doc.append(table(header, rows))

# Headline ratios.
doc.append("Ratios, each the median of per-round ratios (min–max):")
rows = [[f"{p['label']} / {c['label']}"] + [fmt_ratio(per_round_ratio(p["id"], c["id"], sc)) for sc in seed_cols]
        for p in prefork_main for c in comparators]
doc.append(table(["ratio"] + seed_cols, rows))
if meta.get("plots") == "yes":
    plots = [("throughput", "requests/s per scenario"), ("ratios", "Prefork / Gunicorn and Prefork / Kestrel"),
             ("workers", "requests/s against worker processes"),
             ("connections", "requests/s against connections"),
             ("latency", "latency at a fixed rate, by percentile")]
    doc.append("\n".join(f"![{what}]({stamp}-{name}.png)" for name, what in plots))

# Every scenario: ratios.
doc.append("## Prefork / Gunicorn and Prefork / Kestrel, every scenario")
doc.append("Requests/s of each Prefork configuration divided by each comparator's, per round, then the median (min–max).")
rows = [[sc["id"], p["label"]] + [fmt_ratio(per_round_ratio(p["id"], c["id"], sc["id"])) for c in comparators]
        for sc in scenarios for p in prefork_main]
doc.append(table(["scenario", "Prefork"] + [f"/ {c['label']}" for c in comparators], rows))

# Every scenario: details.
doc.append("## Every scenario")
doc.append("Closed loop (wrk as fast as the server answers). Latency as wrk reports it (closed loop, so it flatters "
           "servers that stall; the fixed-rate section below does not). CPU: seconds per 100,000 requests, "
           "the server's process tree (utime+stime from /proc) and wrk's (/usr/bin/time); *wrk cores* is wrk's CPU "
           "time over the run's length: near the machine's cores, the client was the bottleneck.")
for sc in scenarios:
    doc.append(f"### {sc['id']}: {sc['what']}")
    rows = []
    for s in servers:
        runs = closed.get((s["id"], sc["id"]))
        if not runs:
            continue
        srv, cli, cores = cpu_per_100k(s["id"], sc["id"])
        rows.append([s["label"], fmt_spread(throughput(s["id"], sc["id"]))]
                    + [fmt_n(median(latency(s["id"], sc["id"], k)), 2) for k in ("p50", "p99", "p99_9")]
                    + [errors(runs)] + [fmt_n(median(x), 2) for x in (srv, cli, cores)])
    doc.append(table(["server", "requests/s (min–max)", "p50 ms", "p99 ms", "p99.9 ms", "errors (all runs)",
                      "server CPU s", "wrk CPU s", "wrk cores"], rows))

# Fixed rate.
if paced:
    doc.append("## Fixed rate: latency without coordinated omission")
    doc.append(f"GET / keep-alive at {meta.get('paced_rate')} requests/s over {meta.get('paced_conns')} connections "
               f"(one wrk thread each), {meta.get('paced_runs')} run(s) of {meta.get('paced_duration')} s. Each request has "
               "a slot on a fixed schedule; when the server makes a request late, its latency counts from the slot "
               "(bench/lua/bench.lua). Debian's wrk is not wrk2 (no -R), hence the script. Milliseconds, median over runs.")
    rows = []
    for s in main_servers:
        pp = paced_percentiles(s["id"])
        if not pp:
            continue
        rows.append([s["label"], fmt_n(median(paced_rate(s["id"])))] + [fmt_n(median(pp[k]), 2) for k in pp]
                    + [errors(paced[s["id"]])])
    doc.append(table(["server", "achieved req/s", "p50", "p75", "p90", "p99", "p99.9", "p99.99", "max", "errors"], rows))

# Workers sweep.
sweep_scenarios = [sc for sc in scenarios if sc["sweep"] == "yes"]
prefork_all = [s for s in servers if s["kind"] == "prefork"]
doc.append("## Requests/s against worker processes")
rows = [[sc["id"], s["label"], fmt_spread(throughput(s["id"], sc["id"]))] for sc in sweep_scenarios for s in prefork_all]
doc.append(table(["scenario", "server", "requests/s (min–max)"], rows))

# Memory.
doc.append("## Memory")
doc.append("VmRSS from /proc/PID/status of the master (or only process) and each child; PSS (smaps_rollup) "
           "splits shared pages between the processes that map them, so its total is the honest sum. "
           "*idle*: after start-up and warm-up; *after load*: after every scenario.")
rows = []
for s in servers:
    m = memory.get(s["id"], {})
    for phase, name in (("start", "idle"), ("load", "after load")):
        if phase not in m:
            continue
        pss, rss = m[phase]
        workers = rss[1:]
        rows.append([s["label"], name, len(rss), mib(rss[0]),
                     mib(statistics.mean(workers)) if workers else "—", mib(sum(rss)), mib(pss)])
doc.append(table(["server", "when", "processes", "master RSS", "RSS per worker (mean)", "RSS total", "PSS total"], rows))

# Start-up.
doc.append("## Start-up: launch to the first 200 on GET /")
doc.append("Polled with curl every 10 ms from the moment the command is launched (a first answer, not every worker ready).")
rows = [[s["label"], fmt_spread(spread(startup[s["id"]]), 0, " ms")] for s in servers if startup.get(s["id"])]
doc.append(table(["server", "ms, median (min–max)"], rows))

# Settings.
doc.append("## Comparators and settings")
rows = [[s["label"], s["role"], s["settings"], f"`{s['cmd'].strip()}`"] for s in servers]
doc.append(table(["server", "role", "settings", "command (run in bench/.work/)"], rows))
doc.append(f"wrk: `-t {meta.get('cores')}` (one per core; fewer if fewer connections), `--timeout {meta.get('wrk_timeout')}s`, "
           f"`-s bench/lua/bench.lua`, `-H 'Connection: close'` for the close scenarios; "
           f"{meta.get('warmup')} s warm-up of GET / per server before the first round; ulimit -n {meta.get('ulimit_n')}. "
           "Scenarios: " + "; ".join(f"`{s['id']}` {s['path']}, {s['conns']} connections" for s in scenarios) + ".")
doc.append("## Machine")
doc.append(table(["", ""], [[k, meta.get(k, "")] for k in
                            ("cpu", "cores", "memory", "os", "kernel", "dotnet", "gunicorn", "nginx", "wrk",
                             "prefork_commit", "load_start", "load_end", "started", "finished")]))
doc.append("## Notes")
doc.append("\n".join(f"- {n}" for n in notes) or "- none")

with open(os.path.join(results_dir, stamp + ".md"), "w") as f:
    f.write("\n\n".join(doc) + "\n")


# --- data for plot.gp ------------------------------------------------------------------------

def q(text):
    return '"' + text.replace('"', "'") + '"'


def val(sp):
    return "-" if sp is None else f"{sp[0]:.6g}"


# One colour per server, the same in every plot: Prefork warm (light for one worker), Gunicorn
# green, Kestrel purple, nginx grey.
FIXED_COLORS = {"nginx": "#7f7f7f", "gunicorn-sync": "#2ca02c", "gunicorn-gthread": "#98df8a", "kestrel": "#9467bd"}
CLASS_COLORS = {"sync": ("#ffaa55", "#d62728"), "threads": ("#f7b6d2", "#e377c2"), "epoll": ("#aec7e8", "#1f77b4")}


def color(s):
    if s["id"] in FIXED_COLORS:
        return FIXED_COLORS[s["id"]]
    cls, workers = s["args"].split()
    light, dark = CLASS_COLORS.get(cls, ("#c49c94", "#8c564b"))
    return light if workers == "1" else dark


def colors(items):
    return q(" ".join(color(s) for s in items))


def write(name, lines):
    with open(os.path.join(plot_dir, name), "w") as f:
        f.write("\n".join(lines) + "\n")


# throughput.dat: one row per scenario; per main server, median min max.
lines = ["scenario " + " ".join(f"{q(s['label'])} min max" for s in main_servers)]
for sc in scenarios:
    cells = []
    for s in main_servers:
        sp = throughput(s["id"], sc["id"])
        cells += ["-", "-", "-"] if sp is None else [f"{sp[0]:.6g}", f"{sp[1]:.6g}", f"{sp[2]:.6g}"]
    lines.append(q(sc["id"]) + " " + " ".join(cells))
write("throughput.dat", lines)

# ratios.dat: one row per scenario; per (Prefork main config, comparator), the median ratio.
# First every Prefork configuration against Gunicorn sync, then against Kestrel (plot.gp fills
# the second group with a pattern).
pairs_g = [(p, by_id["gunicorn-sync"]) for p in prefork_main if "gunicorn-sync" in by_id]
pairs_k = [(p, by_id["kestrel"]) for p in prefork_main if "kestrel" in by_id]
pairs = pairs_g + pairs_k
lines = ["scenario " + " ".join(q(f"{p['label']} / {c['label']}") for p, c in pairs)]
for sc in scenarios:
    lines.append(q(sc["id"]) + " " + " ".join(val(per_round_ratio(p["id"], c["id"], sc["id"])) for p, c in pairs))
write("ratios.dat", lines)

# workers.dat: one block per sweep scenario; rows: worker processes, one column per Prefork
# class, then one column per comparator (a point at its own process count).
others = [s for s in main_servers if s["kind"] != "prefork"]
max_w = max([int(s["args"].split()[1]) for s in prefork_all] + [1])


def processes(s):
    if s["kind"] == "gunicorn":
        return int(s["args"].split()[1])
    if s["kind"] == "nginx":
        return int(meta.get("cores", 1))
    return 1


lines = []
for sc in sweep_scenarios:
    lines.append("workers " + " ".join(q(f"Prefork {c}") for c in classes) + " " + " ".join(q(s["label"]) for s in others))
    for w in range(1, max(max_w, *[processes(s) for s in others]) + 1):
        cells = [val(throughput(f"prefork-{c}-w{w}", sc["id"])) if f"prefork-{c}-w{w}" in by_id else "-" for c in classes]
        cells += [val(throughput(s["id"], sc["id"])) if processes(s) == w else "-" for s in others]
        lines.append(f"{w} " + " ".join(cells))
    lines += ["", ""]
write("workers.dat", lines)

# connections.dat: hello keep-alive at each connection count, one column per main server.
conn_scenarios = sorted((sc for sc in scenarios if sc["path"] == "/" and sc["close"] == "no"), key=lambda sc: int(sc["conns"]))
lines = ["connections " + " ".join(q(s["label"]) for s in main_servers)]
for sc in conn_scenarios:
    lines.append(sc["conns"] + " " + " ".join(val(throughput(s["id"], sc["id"])) for s in main_servers))
write("connections.dat", lines)

# latency.dat: rows: percentiles (x: how many nines), one column per main server, milliseconds.
NINES = [("p50", 50), ("p75", 75), ("p90", 90), ("p99", 99), ("p99_9", 99.9), ("p99_99", 99.99)]
with_paced = [s for s in main_servers if paced_percentiles(s["id"])]
lines = ["percentile " + " ".join(q(s["label"]) for s in with_paced)]
for key, pct in NINES:
    lines.append(f"{pct} " + " ".join(val(paced_percentiles(s["id"])[key]) for s in with_paced))
write("latency.dat", lines)

write("vars.gp", [f"n_main = {len(main_servers)}", f"n_pairs_g = {len(pairs_g)}", f"n_pairs_k = {len(pairs_k)}",
                  f"n_classes = {len(classes)}", "colors_main = " + colors(main_servers),
                  "colors_pairs = " + colors([p for p, _ in pairs]), "colors_others = " + colors(others),
                  "colors_classes = " + q(" ".join(CLASS_COLORS.get(c, ("", "#8c564b"))[1] for c in classes)),
                  "colors_paced = " + colors(with_paced),
                  f"n_others = {len(others)}", f"n_sweep = {len(sweep_scenarios)}", f"n_paced = {len(with_paced)}",
                  f"n_conns = {len(conn_scenarios)}",
                  "sweep_titles = " + q(" ".join(sc["id"] for sc in sweep_scenarios)),
                  f"paced_rate = {meta.get('paced_rate', 0)}", f"run_title = {q(meta.get('host', '') + ', ' + meta.get('started', '') + ', ' + mode)}"])
print(os.path.join(results_dir, stamp + ".md"))
