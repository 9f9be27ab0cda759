"""The bench's application for Gunicorn: the same routes and bytes as Prefork's sample app.

  GET  /                  Hello, World! (13 bytes, text/plain)
  GET  /bytes/16k, /bytes/1m
  POST /echo-body         the request body, as sent
  GET  /slow-async?ms=50  sleeps (WSGI has no way to await: a sync or gthread worker blocks)
  GET  /pid               {"pid": N}: which worker answered (bench/faults.sh)

Run: gunicorn --chdir bench/apps wsgi_app:app
"""
import os
import time
from urllib.parse import parse_qs


def _blob(size):
    return bytes(ord("a") + i % 26 for i in range(size))


HELLO = b"Hello, World!"
BLOBS = {"/bytes/16k": _blob(16 * 1024), "/bytes/1m": _blob(1024 * 1024)}
TEXT = "text/plain"
BINARY = "application/octet-stream"


def _reply(start_response, content_type, body, status="200 OK"):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        return _reply(start_response, TEXT, HELLO)
    if path == "/pid":
        return _reply(start_response, "application/json", b'{"pid":%d}' % os.getpid())
    if path in BLOBS:
        return _reply(start_response, BINARY, BLOBS[path])
    if path == "/echo-body":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return _reply(start_response, BINARY, environ["wsgi.input"].read(length))
    if path in ("/slow-async", "/slow"):
        ms = int(parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["1000"])[0])
        time.sleep(ms / 1000)
        return _reply(start_response, TEXT, b"slept\n")
    return _reply(start_response, TEXT, b"Not Found\n", "404 Not Found")
