#!/usr/bin/env bash
# Memory per process: PSS (proportional set size, /proc/PID/smaps_rollup: each shared page divided among
# the processes that map it, so the sum over processes is what they cost together) and VmRSS of the
# master and of each worker, for every Prefork worker class and the comparators, 2 workers each:
#   Prefork sync, threads (--threads 4), epoll   the prefork CLI (JIT, Release build), sample app
#   Prefork NativeAOT sync, threads, epoll       src/Prefork.SampleAot published by bench/aot.sh (rows skipped without it)
#   Gunicorn sync                                Debian's gunicorn, bench/apps/wsgi_app.py
#   Kestrel                                      bench/kestrel (one process: no master, one "worker")
# Idle: after start-up and 20 requests. Under load: sampled 3 s into a 6 s `wrk -t1 -c16` run on GET /.
#   bench/memory.sh [ROUNDS]     e.g. bench/memory.sh 3
# Writes bench/results/memory-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need, build_prefork
rounds=${1:-3}
work=bench/.work/memory
mkdir -p "$work" bench/results
need wrk gunicorn curl
build_prefork
dotnet publish bench/kestrel -c Release -o "$work/kestrel" --nologo -v q > "$work/publish-kestrel.log" 2>&1 \
  || { cat "$work/publish-kestrel.log" >&2; exit 1; }
aot=bench/.work/aot/aot/prefork-sample   # bench/aot.sh's NativeAOT publish, if there is one
# PSS divides each shared page among every process that maps it, so other .NET processes lower the
# .NET figures (beside 8 idle Prefork servers a JIT worker's PSS fell from 20 to 11 MB). The build
# servers the publishes above leave running are such processes: stop them, and count what is left.
dotnet build-server shutdown >/dev/null 2>&1 || true
other_dotnet=$(grep -l libcoreclr.so /proc/[0-9]*/maps 2>/dev/null | wc -l || true)

table=$(python3 - "$work" "$rounds" "$prefork" "$aot" "$(command -v gunicorn)" <<'PY'
import os, signal, socket, statistics, subprocess, sys, time
sys.path.insert(0, "bench")
from procstat import children, kib
work, rounds, prefork, aot, gunicorn = sys.argv[1], int(sys.argv[2]), os.path.abspath(sys.argv[3]), os.path.abspath(sys.argv[4]), sys.argv[5]
apps = os.path.abspath("bench/apps")

def prefork_cmd(exe, cls):
    extra = ["--threads", "4"] if cls == "threads" else []
    return lambda port: [exe, "-b", f"127.0.0.1:{port}", "-w", "2", "-k", cls, *extra, "--accesslog", "", "--log-level", "warning"]

servers = [(f"Prefork {c} ×2 (JIT)", prefork_cmd(prefork, c), True) for c in ("sync", "threads", "epoll")]
if os.path.exists(aot):
    servers += [(f"Prefork {c} ×2 (NativeAOT)", prefork_cmd(aot, c), True) for c in ("sync", "threads", "epoll")]
servers += [
    ("Gunicorn sync ×2", lambda port: [gunicorn, "--chdir", apps, "-b", f"127.0.0.1:{port}", "-k", "sync", "-w", "2", "--log-level", "warning", "wsgi_app:app"], True),
    ("Kestrel (1 process)", lambda port: ["env", "Logging__LogLevel__Default=Warning", "ASPNETCORE_ENVIRONMENT=Production",
                                          os.path.abspath(f"{work}/kestrel/KestrelBench"), "--urls", f"http://127.0.0.1:{port}"], False),
]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def get(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

def sample(master, has_workers):
    """(master PSS, master RSS, [worker PSS], [worker RSS]) in KiB; a single-process server is its own worker."""
    procs = children(master) if has_workers else [master]
    m = (kib(master, "smaps_rollup", "Pss:"), kib(master, "status", "VmRSS")) if has_workers else (0, 0)
    return m[0], m[1], [kib(w, "smaps_rollup", "Pss:") for w in procs], [kib(w, "status", "VmRSS") for w in procs]

rows = {name: {"idle": [], "load": [], "rps": []} for name, _, _ in servers}
for r in range(rounds):
    for name, cmd, has_workers in servers:
        port = free_port()
        argv = cmd(port)
        # env(1) execs the server, so the pid stays the server's.
        with open(f"{work}/server.log", "a") as log:
            p = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        until = time.monotonic() + 60
        while not get(port):
            if p.poll() is not None or time.monotonic() > until: raise SystemExit(f"{name} did not start: {work}/server.log")
            time.sleep(0.05)
        while has_workers and len(children(p.pid)) < 2: time.sleep(0.05)
        for _ in range(20): get(port)
        time.sleep(2)
        rows[name]["idle"].append(sample(p.pid, has_workers))
        wrk = subprocess.Popen(["timeout", "30", "wrk", "-t1", "-c16", "-d6s", f"http://127.0.0.1:{port}/"], stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        rows[name]["load"].append(sample(p.pid, has_workers))
        out = wrk.communicate()[0]
        rows[name]["rps"] += [float(l.split()[1]) for l in out.splitlines() if l.startswith("Requests/sec:")]
        p.send_signal(signal.SIGTERM)
        try: p.wait(15)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()

med = statistics.median
def mb(k): return f"{k / 1024:.1f}"
print("| server | state | worker PSS (median, max) | worker RSS (median) | master PSS | master RSS | total PSS | wrk req/s |")
print("|---|---|---|---|---|---|---|---|")
for name, _, has_workers in servers:
    for state in ("idle", "load"):
        s = rows[name][state]
        wpss = [v for x in s for v in x[2]]; wrss = [v for x in s for v in x[3]]
        mpss = med([x[0] for x in s]); mrss = med([x[1] for x in s])
        total = med([x[0] + sum(x[2]) for x in s])
        rps = f"{med(rows[name]['rps']):.0f}" if state == "load" and rows[name]["rps"] else ""
        master = (f"{mb(mpss)} MB", f"{mb(mrss)} MB") if has_workers else ("–", "–")
        print(f"| {name} | {'idle' if state == 'idle' else 'under load'} | {mb(med(wpss))} MB ({mb(max(wpss))}) | {mb(med(wrss))} MB "
              f"| {master[0]} | {master[1]} | {mb(total)} MB | {rps} |")
PY
)

out="bench/results/memory-$(date +%F)-$(hostname).md"
{
  echo "# Memory per worker and per master ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "PSS from /proc/PID/smaps_rollup (shared pages divided among the processes mapping them; the sum is what"
  echo "the processes cost together) and VmRSS, in MB (MiB). 2 workers per server, the sample app (bench/apps/wsgi_app.py"
  echo "for Gunicorn, bench/kestrel for Kestrel, which is one process). Idle: after start-up and 20 requests;"
  echo "under load: sampled 3 s into \`wrk -t1 -c16 -d6s\` on GET /. Medians over $rounds rounds (servers in turn in"
  echo "each round); worker figures over every worker of every round."
  echo
  echo "Command: \`bench/memory.sh $rounds\` (NativeAOT rows: after \`bench/aot.sh\`). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Other processes mapping the .NET runtime (libcoreclr.so) when the measuring began: $other_dotnet (each one lowers the .NET rows' PSS)."
  echo
  echo "$table"
} | tee "$out"
