#!/usr/bin/env python3
"""A non-.NET command worker for the tests: Python's standard library only.

It takes its socket the systemd way (fd 3, LISTEN_FDS, LISTEN_PID must be its own pid), serves
HTTP on it, says READY=1 on NOTIFY_SOCKET and sends WATCHDOG=1 heartbeats with Prefork's fields.
Flags: --no-notify (never notifies), --fail-boot (prints why and exits 2 before serving),
--linger (ignores stop signals, so only KILL ends it), --close-output (closes stdout and stderr once ready). TERM, INT and USR2 stop it gracefully: it
stops accepting, finishes its requests, and exits 0.
Routes: /pid, /env (JSON), /fds (the fds it was started with), /slow?ms=N, /stop-watchdog, /print?text=T.
"""
import os

def open_fds():
    """The fds open now: listdir's own fd is in its listing but closed once it returns."""
    def is_open(fd):
        try:
            os.fstat(fd)
            return True
        except OSError:
            return False
    return [fd for fd in sorted(map(int, os.listdir("/proc/self/fd"))) if is_open(fd)]

# What the master handed over, taken before this script opens anything. Later the listing would
# also hold connections being served and the heartbeat's notify socket, which come and go.
INHERITED_FDS = open_fds()

import http.server, json, signal, socket, socketserver, sys, threading, time, urllib.parse

args = set(sys.argv[1:])
if "--fail-boot" in args:
    print("cannot boot: the database at db.invalid is unreachable", file=sys.stderr, flush=True)
    sys.exit(2)
if os.environ.get("LISTEN_PID") != str(os.getpid()):
    print(f"LISTEN_PID={os.environ.get('LISTEN_PID')} is not my pid {os.getpid()}", file=sys.stderr, flush=True)
    sys.exit(3)
count = int(os.environ.get("LISTEN_FDS", "0"))
if count < 1:
    print("no LISTEN_FDS", file=sys.stderr, flush=True)
    sys.exit(3)

state = {"requests": 0, "busy": {}, "watchdog": True}
lock = threading.Lock()

def notify(text):
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or "--no-notify" in args:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(text.encode(), address)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2  # an idle keep-alive connection ends, so a stop is not held up by it

    def log_message(self, *a):
        pass

    def reply(self, body, type="text/plain"):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        me = threading.get_ident()
        with lock:
            state["busy"][me] = (time.monotonic(), self.command, url.path)
        try:
            if url.path == "/pid":
                self.reply(str(os.getpid()))
            elif url.path == "/env":
                keys = [k for k in os.environ if k.startswith(("LISTEN_", "PREFORK_", "NOTIFY_", "WATCHDOG_"))]
                self.reply(json.dumps({k: os.environ[k] for k in keys}), "application/json")
            elif url.path == "/fds":
                self.reply(" ".join(map(str, INHERITED_FDS)))
            elif url.path == "/slow":
                time.sleep(min(int(query.get("ms", ["1000"])[0]), 60000) / 1000)
                self.reply("slept")
            elif url.path == "/stop-watchdog":
                state["watchdog"] = False
                self.reply("watchdog stopped")
            elif url.path == "/print":
                print(query.get("text", [""])[0], flush=True)
                self.reply("printed")
            else:
                self.reply(f"hello from python pid {os.getpid()}\n")
        finally:
            with lock:
                del state["busy"][me]
                state["requests"] += 1

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight

server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket.close()
server.socket = socket.socket(fileno=3)
# Every worker polls the same listener: a blocking accept() after a wake-up another worker won would hang.
server.socket.setblocking(False)

def heartbeat():
    interval = min(1.0, int(os.environ.get("WATCHDOG_USEC", "2000000")) / 2e6)
    while True:
        time.sleep(interval)
        if not state["watchdog"]:
            continue
        with lock:
            oldest = min(state["busy"].values(), default=None)
            fields = f"WATCHDOG=1\nPREFORK_REQUESTS={state['requests']}\n"
            if oldest:
                fields += f"PREFORK_BUSY_MS={int((time.monotonic() - oldest[0]) * 1000)}\nPREFORK_METHOD={oldest[1]}\nPREFORK_PATH={oldest[2]}\n"
            else:
                fields += "PREFORK_BUSY_MS=-1\n"
        notify(fields)
        if not state.get("beating"):
            state["beating"] = True
            print("first heartbeat sent", flush=True)

def stop(signum, frame):
    print(f"got {signal.Signals(signum).name}" + (", ignoring it" if "--linger" in args else ", stopping"), flush=True)
    if "--linger" in args:
        return
    notify("STOPPING=1")
    threading.Thread(target=server.shutdown).start()

for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
    signal.signal(s, stop)
threading.Thread(target=heartbeat, daemon=True).start()
print(f"serving on fd 3 as pid {os.getpid()}", flush=True)
notify(f"READY=1\nSTATUS=serving on {count} socket(s)")
if "--close-output" in args:
    os.close(1)
    os.close(2)
server.serve_forever()
server.server_close()
