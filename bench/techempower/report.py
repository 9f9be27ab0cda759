"""The results file of bench/techempower.sh, in Markdown, from its raw runs.

  python3 report.py RAW.tsv SERVERS.tsv COMMAND ROUNDS DURATION LOAD_START LOAD_END CORES VERSIONS [PLOT_DIR]

With PLOT_DIR, also writes the data of bench/techempower/plot.gp there (throughput.dat, cpu.dat, vars.gp).

Ratios are taken within a round (both servers measured minutes apart at most, under the same load),
then summarised as median and min–max over the rounds.
"""
import csv
import statistics
import sys
from collections import defaultdict
from datetime import datetime, timezone

DB_PATHS = {"/db", "/fortunes"}  # the tests that query PostgreSQL (≥ 5× Gunicorn is their target)


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def spread(values, fmt="{:,.0f}"):
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def main():
    raw_path, servers_path, command, rounds, duration, load_start, load_end, cores, versions = sys.argv[1:10]
    raw = read_tsv(raw_path)
    servers = read_tsv(servers_path)
    label = {s["id"]: s["label"] for s in servers}
    label.setdefault("postgresql", "PostgreSQL alone (pgbench)")
    order = [s["id"] for s in servers]
    rps = defaultdict(dict)       # (test, server) -> {round: rps}
    errors = defaultdict(int)     # (test, server) -> errors over all rounds
    cpu = defaultdict(list)       # (test, server) -> [(server, postgres, client) µs per request] per round
    for row in raw:
        key = (row["test"], row["server"])
        rps[key][int(row["round"])] = float(row["rps"])
        errors[key] += int(row["errors"])
        requests = float(row["rps"]) * float(duration)
        if requests > 0 and row.get("pg_cpu"):
            cpu[key].append(tuple(float(row[c] or 0) * 1e6 / requests for c in ("server_cpu", "pg_cpu", "wrk_cpu")))
    # The tests, their connections and which query the database: as techempower.sh declared them, in its order.
    tests = list(dict.fromkeys(row["test"] for row in raw))
    conns = {row["test"]: row["connections"] for row in raw}
    db_tests = {row["test"] for row in raw if row["path"] in DB_PATHS}

    def median(test, server):
        values = list(rps[(test, server)].values())
        return statistics.median(values) if values else 0.0

    def ratios(test, a, b):
        """a ÷ b per round, for the rounds where both ran."""
        ra, rb = rps[(test, a)], rps[(test, b)]
        return [ra[r] / rb[r] for r in sorted(ra) if r in rb and rb[r] > 0]

    def ratio_text(values):
        if not values:
            return "–"
        return f"{statistics.median(values):.2f} ({spread(values, '{:.2f}')})"

    prefork_classes = [s for s in order if s.startswith("prefork-") and not s.endswith("-baseline")]  # a baseline build is for A/B only
    gunicorns = [s for s in order if s.startswith("gunicorn-")]
    out = []
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append(f"# TechEmpower-style tests against PostgreSQL ({now}, {cores} cores)")
    out.append("")
    out.append(f"Command: `{command}` — {rounds} rounds × {duration} s per test and server, servers interleaved "
               "within each round, wrk on 127.0.0.1 with one thread per core, every response checked before the load "
               "(bench/techempower/check.py). Ratios are taken within each round; shown as median (min–max) over the rounds.")
    out.append("")
    out.append(f"Load average (1, 5, 15 min): **{load_start}** at the start, **{load_end}** at the end. "
               f"The {cores} cores are shared by wrk, PostgreSQL, the server under test and whatever else runs "
               "on the machine (other builds and tests), so absolute figures are noisy; compare within a table.")
    out.append("")
    out.append(f"Versions: {versions}.")
    out.append("")
    out.append("## Headline: Prefork's best worker class against Kestrel and Gunicorn")
    out.append("")
    out.append("| test | connections | best Prefork class | req/s | Kestrel req/s | best Gunicorn | req/s "
               "| Prefork ÷ Kestrel | Prefork ÷ Gunicorn | target |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for test in tests:
        best = max(prefork_classes, key=lambda s: median(test, s), default=None)
        gbest = max(gunicorns, key=lambda s: median(test, s), default=None)
        if best is None:
            continue
        vs_kestrel = ratios(test, best, "kestrel")
        vs_gunicorn = ratios(test, best, gbest) if gbest else []
        met = bool(vs_kestrel) and statistics.median(vs_kestrel) >= 1
        goal = "≥ Kestrel"
        if test in db_tests:
            met = met and bool(vs_gunicorn) and statistics.median(vs_gunicorn) >= 5
            goal += ", ≥ 5× Gunicorn"
        out.append(f"| {test} | {conns[test]} | {label[best]} | {median(test, best):,.0f} | {median(test, 'kestrel'):,.0f} "
                   f"| {label.get(gbest, '–')} | {median(test, gbest) if gbest else 0:,.0f} | {ratio_text(vs_kestrel)} "
                   f"| {ratio_text(vs_gunicorn)} | {goal}: {'met' if met else '**not met**'} |")
    ceiling = [v for v in rps[("db", "postgresql")].values()]
    if ceiling:
        out.append("")
        out.append(f"PostgreSQL's own ceiling for the db query (pgbench, prepared, 16 clients, same machine, "
                   f"nothing else of ours running): median {statistics.median(ceiling):,.0f}/s ({spread(ceiling)}).")

    cpu_tests = [t for t in tests if any(cpu[(t, s)] for s in dict.fromkeys(order + ["postgresql"]))]
    if cpu_tests:
        out.append("")
        out.append("## CPU time per request")
        out.append("")
        out.append(f"What one request cost in CPU (user + system, from /proc and /usr/bin/time, over each whole "
                   f"wrk run, divided by its requests; median over the rounds), split between the server (all its "
                   f"processes), PostgreSQL (postmaster and backends) and the client (wrk; pgbench in the PostgreSQL "
                   f"row). The load of a shared machine distorts these much less than requests/s. With {cores} cores "
                   f"and nothing else running, {cores} s of CPU per second is all there is: the last column is the "
                   f"rate that would take, the ceiling of that server on this machine.")
        for test in cpu_tests:
            out.append("")
            out.append(f"| {test}: server | server µs | PostgreSQL µs | client µs | total µs | {cores} cores ÷ total |")
            out.append("|---|---|---|---|---|---|")
            ids = [s for s in dict.fromkeys(order + ["postgresql"]) if cpu[(test, s)]]
            rows = []
            for s in ids:
                parts = [statistics.median(v[i] for v in cpu[(test, s)]) for i in range(3)]
                total = statistics.median(sum(v) for v in cpu[(test, s)])
                rows.append((total, s, parts))
            for total, s, parts in sorted(rows):
                out.append(f"| {label[s]} | {parts[0]:,.0f} | {parts[1]:,.0f} | {parts[2]:,.0f} | {total:,.0f} "
                           f"| {int(cores) * 1e6 / total:,.0f}/s |")

    for test in tests:
        out.append("")
        out.append(f"## {test} ({conns[test]} connections)")
        out.append("")
        out.append("| server | req/s (median) | min–max | ÷ Kestrel | errors |")
        out.append("|---|---|---|---|---|")
        ids = [s for s in order if rps[(test, s)]]
        ids.sort(key=lambda s: -median(test, s))
        for s in ids:
            values = list(rps[(test, s)].values())
            kestrel = ratio_text(ratios(test, s, "kestrel")) if s != "postgresql" else "–"
            out.append(f"| {label[s]} | {median(test, s):,.0f} | {spread(values)} | {kestrel} | {errors[(test, s)]} |")

    out.append("")
    out.append("## Servers")
    out.append("")
    out.append("| server | settings | command (run in bench/.work/techempower) |")
    out.append("|---|---|---|")
    for s in servers:
        command_text = s["command"].replace("|", "\\|")
        out.append(f"| {s['label']} | {s['settings']} | `{command_text}` |")
    print("\n".join(out))
    if len(sys.argv) > 10:
        write_plot_data(sys.argv[10], tests, db_tests, [s for s in order if s != "postgresql"], label, rps, cpu,
                        f"{now}, load {load_start} to {load_end}")


def write_plot_data(directory, tests, db_tests, servers, label, rps, cpu, title):
    """Gnuplot's inputs: requests/s per test (median, min, max per server) and CPU µs per request."""
    import os
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "throughput.dat"), "w") as f:
        f.write("test " + " ".join(f'"{label[s]}" min max' for s in servers) + "\n")
        for test in tests:
            cells = []
            for s in servers:
                values = list(rps[(test, s)].values())
                cells += [f"{statistics.median(values):.0f}", f"{min(values):.0f}", f"{max(values):.0f}"] if values else ["-"] * 3
            f.write(f"{test} " + " ".join(cells) + "\n")
    cpu_tests = [t for t in tests if t in db_tests]
    with open(os.path.join(directory, "cpu.dat"), "w") as f:
        f.write('server "server" "PostgreSQL" "client (wrk; pgbench)"\n')
        for test in cpu_tests:
            for s in servers + ["postgresql"]:
                if cpu[(test, s)]:
                    parts = [statistics.median(v[i] for v in cpu[(test, s)]) for i in range(3)]
                    name = f"{test}: {label[s]}".replace('"', "'")
                    f.write(f'"{name}" ' + " ".join(f"{p:.1f}" for p in parts) + "\n")
            f.write('"" - - -\n')
    with open(os.path.join(directory, "vars.gp"), "w") as f:
        f.write(f'n_servers = {len(servers)}\nn_cpu_tests = {len(cpu_tests)}\nrun_title = "{title}"\n')


if __name__ == "__main__":
    main()
