#!/usr/bin/env bash
# The sample app linked into Prefork as one executable (src/Prefork.SampleAot, PreforkHost), published
# four ways and measured side by side, the builds interleaved in each round:
#   JIT        dotnet publish -c Release -p:PublishAot=false                       (framework-dependent)
#   ReadyToRun dotnet publish -c Release -r linux-x64 --self-contained false -p:PublishAot=false -p:PublishReadyToRun=true
#   NativeAOT  dotnet publish -c Release -r linux-x64 -p:PublishAot=true          (one native file; needs clang, zlib1g-dev)
#   NativeAOT, PIE  the same, position-independent and dehydrated (.NET's defaults, which the sample's csproj turns
#              off for start-up): what that choice buys, measured in the same rounds
# For each: worker and master RSS and PSS when idle (2 threads-class workers, each has served), the time
# from exec of the master to the first 200 on GET /, and the CPU time a HUP costs with 8 workers (utime+stime
# of the master, its reaped children and its live workers from /proc/PID/stat, from the HUP until the
# new generation serves and the old one has exited).
#   bench/aot.sh [ROUNDS] [--reuse] [--realtime]   e.g. bench/aot.sh 5
#     --reuse: measure the builds already in bench/.work/aot
#     --realtime: measure at SCHED_FIFO priority (chrt -f 10, root): on a machine other jobs load, a start's
#       wall time is mostly waiting for a core; at that priority our processes take one first, so the times
#       are close to an idle machine's (the kernel keeps 5% of each second for the others)
# Writes bench/results/aot-<date>-<host>.md. Loopback only; everything started is stopped by pid.
set -euo pipefail
source "$(dirname "$0")/lib.sh"   # cd to the repository, servers stopped on exit, need
rounds=5 reuse= realtime=
for arg in "$@"; do
  case $arg in
    --reuse) reuse=--reuse ;;
    --realtime) realtime=--realtime ;;
    *) rounds=$arg ;;
  esac
done
work=bench/.work/aot
mkdir -p "$work" bench/results
need curl clang
dpkg -s zlib1g-dev >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zlib1g-dev; }

project=src/Prefork.SampleAot/Prefork.SampleAot.csproj
declare -A publish_args=(
  [jit]="-p:PublishAot=false"
  [r2r]="-r linux-x64 --self-contained false -p:PublishAot=false -p:PublishReadyToRun=true"
  [aot]="-r linux-x64 -p:PublishAot=true"
  [aotpie]="-r linux-x64 -p:PublishAot=true -p:PositionIndependentExecutable=true -p:IlcDehydrate=true -p:NativeIntermediateOutputPath=obj/Release/net10.0/linux-x64/native-pie/"
)
for build in jit r2r aot aotpie; do
  [ "$reuse" = --reuse ] && [ -x "$work/$build/prefork-sample" ] && continue
  echo "publishing $build" >&2
  # shellcheck disable=SC2086 # the arguments are words
  dotnet publish "$project" -c Release ${publish_args[$build]} -o "$work/$build" --nologo > "$work/publish-$build.log" 2>&1 \
    || { cat "$work/publish-$build.log" >&2; exit 1; }
done
# The NativeAOT publish's trim and AOT analysis (ILLink/ILC warnings IL2xxx/IL3xxx), counted from its output.
aot_warnings=$(cat "$work/publish-aot.log" "$work/publish-aotpie.log" | grep -cE 'warning IL[23][0-9]{3}' || true)

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
measure=(python3); [ -n "$realtime" ] && measure=(chrt -f 10 python3)
table=$("${measure[@]}" - "$work" "$rounds" <<'PY'
import os, signal, socket, statistics, subprocess, sys, time
sys.path.insert(0, "bench")
from procstat import children, kib
work, rounds = os.path.abspath(sys.argv[1]), int(sys.argv[2])
builds = {"jit": "JIT", "r2r": "ReadyToRun", "aot": "NativeAOT", "aotpie": "NativeAOT, PIE"}
CLK = os.sysconf("SC_CLK_TCK")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def get(port, timeout=1.0):
    """One GET / over a new connection: the status code, or None if nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None
    except OSError:
        return None

def cpu(pid, reaped=False):
    """utime+stime (and, for the master, what its reaped children used), in seconds."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if reaped else 0)
    return ticks / CLK

def start(build, port, workers, log):
    exe = os.path.join(work, build, "prefork-sample")
    return subprocess.Popen([exe, "-b", f"127.0.0.1:{port}", "-w", str(workers), "--accesslog", "", "--log-level", "info"],
                            cwd=os.path.join(work, build), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

def wait_log(path, text, count=1, timeout=60):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if open(path).read().count(text) >= count:
            return True
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {text!r} in {path}")

def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); p.wait()

results = {b: {"bare": [], "first": [], "firstcpu": [], "wrss": [], "wpss": [], "mrss": [], "mpss": [], "hup": [], "hupwall": []} for b in builds}
for r in range(rounds):
    for b in builds:
        # The floor under a start: one process of this file from exec to exit, doing next to nothing (--version).
        t0 = time.monotonic()
        subprocess.run([os.path.join(work, b, "prefork-sample"), "--version"], stdout=subprocess.DEVNULL, check=True)
        results[b]["bare"].append((time.monotonic() - t0) * 1000)
        # Start-up and idle memory: 2 workers.
        port = free_port(); logpath = f"{work}/{b}-{r}.log"
        with open(logpath, "w") as log:
            t0 = time.monotonic()
            p = start(b, port, 2, log)
            # Refused until the master listens (retried at once); then the request waits in the backlog until
            # a worker accepts it, however long that takes: the answer is the first a client could have had.
            while get(port, 30) != 200:
                if p.poll() is not None: raise SystemExit(f"{b} exited: see {logpath}")
                time.sleep(0.001)
            results[b]["first"].append((time.monotonic() - t0) * 1000)
            # The CPU it took (master and workers, 10 ms ticks): on a machine other jobs load, the wall time waits for the scheduler.
            results[b]["firstcpu"].append((cpu(p.pid, reaped=True) + sum(cpu(w) for w in children(p.pid))) * 1000)
            wait_log(logpath, "Ready:")
            for _ in range(20): get(port)   # every worker has served (the threads class spreads the load)
            time.sleep(2)
            ws = children(p.pid)
            results[b]["wrss"] += [kib(w, "status", "VmRSS") for w in ws]
            results[b]["wpss"] += [kib(w, "smaps_rollup", "Pss:") for w in ws]
            results[b]["mrss"].append(kib(p.pid, "status", "VmRSS"))
            results[b]["mpss"].append(kib(p.pid, "smaps_rollup", "Pss:"))
            stop(p)
        # HUP with 8 workers: CPU from the HUP until generation 2 serves and generation 1 has exited.
        port = free_port(); logpath = f"{work}/{b}-{r}-hup.log"
        with open(logpath, "w") as log:
            p = start(b, port, 8, log)
            wait_log(logpath, "Ready: generation 1")
            time.sleep(2)
            old = set(children(p.pid))
            before = cpu(p.pid, reaped=True) + sum(cpu(w) for w in old)
            t0 = time.monotonic()
            p.send_signal(signal.SIGHUP)
            wait_log(logpath, "Ready: generation 2")
            until = time.monotonic() + 60
            while (old & set(children(p.pid))) and time.monotonic() < until:
                time.sleep(0.005)
            wall = time.monotonic() - t0
            now = children(p.pid)
            after = cpu(p.pid, reaped=True) + sum(cpu(w) for w in now)
            results[b]["hup"].append(after - before); results[b]["hupwall"].append(wall)
            stop(p)

med = statistics.median
def mb(k): return f"{k / 1024:.1f}"
print("| build | worker RSS | worker PSS | master RSS | master PSS | start → first response | its CPU | one bare process (--version) | HUP of 8 workers: CPU | HUP: wall |")
print("|---|---|---|---|---|---|---|---|---|---|")
for b, name in builds.items():
    x = results[b]
    print(f"| {name} | worker RSS: {mb(med(x['wrss']))} MB | {mb(med(x['wpss']))} MB | {mb(med(x['mrss']))} MB | {mb(med(x['mpss']))} MB "
          f"| {med(x['first']):.0f} ms ({min(x['first']):.0f}–{max(x['first']):.0f}) | {med(x['firstcpu']):.0f} ms | {med(x['bare']):.0f} ms "
          f"| {med(x['hup']):.2f} s ({min(x['hup']):.2f}–{max(x['hup']):.2f}) | {med(x['hupwall']):.2f} s |")
print()
print("Runs: start → first response (ms) / HUP CPU (s) per round:")
print()
for b, name in builds.items():
    print(f"- {name}: " + " ".join(f"{v:.0f}" for v in results[b]["first"]) + " / " + " ".join(f"{v:.2f}" for v in results[b]["hup"]))
PY
)

out="bench/results/aot-$(date +%F)-$(hostname).md"
n=2; while [ -e "$out" ]; do out="bench/results/aot-$(date +%F)-$(hostname)-$n.md"; n=$((n + 1)); done # keep earlier runs of the day
{
  echo "# NativeAOT, ReadyToRun and JIT builds of one executable ($(date -u '+%F %H:%M UTC'), $(nproc) cores, $(hostname))"
  echo
  echo "src/Prefork.SampleAot: the sample app linked into Prefork with \`PreforkHost.Run<SampleApplication>(args)\`;"
  echo "its workers execute the same file. Median over $rounds rounds, the builds interleaved in each round"
  echo "(min–max in brackets). Worker and master: VmRSS and PSS (/proc/PID/smaps_rollup) of the threads class,"
  echo "2 workers, idle after 20 requests. Start → first response: exec of the master to the first 200 on GET /."
  echo "HUP: utime+stime of master (its reaped children included) and workers from the HUP until generation 2"
  echo "of 8 workers serves and generation 1 has exited. \"its CPU\": utime+stime of master and workers at the first response"
  echo "(10 ms ticks): what start-up costs whatever else the machine runs. One bare process: \`prefork-sample --version\`"
  echo "from exec to exit, the floor under each of the two starts (master, then a worker) before a first response."
  [ -n "$realtime" ] && echo "Measured at SCHED_FIFO priority (--realtime: chrt -f 10), which keeps other jobs' load out of the wall times."
  echo
  echo "Command: \`bench/aot.sh $rounds $reuse $realtime\`. Load average before: $load_before, at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "NativeAOT publish: $aot_warnings trim/AOT warnings (IL2xxx/IL3xxx); binary $(du -m "$work/aot/prefork-sample" | cut -f1) MB"
  echo "(plus libMono.Unix.so beside it)."
  echo
  echo "$table"
} | tee "$out"
