"""TechEmpower's four tests for Gunicorn (sync and gthread workers), with psycopg2.

  GET /plaintext  GET /json  GET /db  GET /fortunes   (as bench/apps/TechEmpowerGateway)

One PostgreSQL connection per worker thread (a sync worker has one thread), opened on first use,
autocommit, with both statements PREPAREd on it: the same server-side work as Npgsql's
auto-prepare. TECHEMPOWER_PG is libpq's connection string.

Run: TECHEMPOWER_PG="host=... dbname=hello_world ..." gunicorn --chdir bench/apps techempower_wsgi:app
"""
import html
import json
import os
import random
import threading

import psycopg2

_local = threading.local()
ADDITIONAL = "Additional fortune added at request time."


def _cursor():
    cursor = getattr(_local, "cursor", None)
    if cursor is None:
        connection = psycopg2.connect(os.environ["TECHEMPOWER_PG"])
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute("PREPARE world (int) AS SELECT id, randomnumber FROM world WHERE id = $1")
        cursor.execute("PREPARE fortunes AS SELECT id, message FROM fortune")
        _local.cursor = cursor
    return cursor


def _reply(start_response, content_type, body):
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _fortunes():
    cursor = _cursor()
    cursor.execute("EXECUTE fortunes")
    rows = cursor.fetchall()
    rows.append((0, ADDITIONAL))
    rows.sort(key=lambda row: row[1])
    cells = "".join("<tr><td>%d</td><td>%s</td></tr>" % (id_, html.escape(message)) for id_, message in rows)
    return ("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
            "<tr><th>id</th><th>message</th></tr>%s</table></body></html>" % cells).encode()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/plaintext":
        return _reply(start_response, "text/plain", b"Hello, World!")
    if path == "/json":
        return _reply(start_response, "application/json", json.dumps({"message": "Hello, World!"}).encode())
    if path == "/db":
        cursor = _cursor()
        cursor.execute("EXECUTE world (%s)", (random.randint(1, 10000),))
        id_, number = cursor.fetchone()
        return _reply(start_response, "application/json", json.dumps({"id": id_, "randomNumber": number}).encode())
    if path == "/fortunes":
        return _reply(start_response, "text/html; charset=utf-8", _fortunes())
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"Not Found"]
