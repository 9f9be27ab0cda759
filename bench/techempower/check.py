"""Checks that a server answers TechEmpower's four tests correctly before it is measured.

  python3 bench/techempower/check.py http://127.0.0.1:PORT

Exits non-zero, naming the endpoint and what is wrong, on the first failure.
"""
import json
import sys
import urllib.request


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def check(base):
    status, ctype, body = get(base, "/plaintext")
    assert (status, body) == (200, b"Hello, World!"), f"/plaintext: {status} {body[:80]!r}"
    assert ctype.startswith("text/plain"), f"/plaintext: Content-Type {ctype}"

    status, ctype, body = get(base, "/json")
    assert status == 200 and json.loads(body) == {"message": "Hello, World!"}, f"/json: {status} {body[:80]!r}"
    assert ctype.startswith("application/json"), f"/json: Content-Type {ctype}"

    for _ in range(3):
        status, ctype, body = get(base, "/db")
        world = json.loads(body)
        assert status == 200 and set(world) == {"id", "randomNumber"}, f"/db: {status} {body[:80]!r}"
        assert 1 <= world["id"] <= 10000 and 1 <= world["randomNumber"] <= 10000, f"/db: out of range {world}"
        assert ctype.startswith("application/json"), f"/db: Content-Type {ctype}"

    status, ctype, body = get(base, "/fortunes")
    page = body.decode("utf-8")
    rows = page.count("<tr><td>")
    assert status == 200 and rows == 13, f"/fortunes: {status}, {rows} rows (13 expected)"
    for needed in ("&lt;script&gt;alert(", "<td>0</td><td>Additional fortune added at request time.</td>",
                   "フレームワークのベンチマーク", "<!DOCTYPE html>", "<title>Fortunes</title>"):
        assert needed in page, f"/fortunes: {needed!r} missing"
    assert "<script>" not in page, "/fortunes: <script> not escaped"
    messages = [cell.split("</td><td>")[1].split("</td>")[0] for cell in page.split("<tr><td>")[1:]]
    # Sorted by message: '<' (escaped as &lt;) sorts first, the Japanese one last.
    assert messages[0].startswith("&lt;script&gt;") and messages[-1] == "フレームワークのベンチマーク", \
        f"/fortunes: not sorted by message: first {messages[0][:30]!r}, last {messages[-1][:30]!r}"
    assert ctype.startswith("text/html") and "utf-8" in ctype.lower(), f"/fortunes: Content-Type {ctype}"


if __name__ == "__main__":
    try:
        check(sys.argv[1])
    except (AssertionError, ValueError, OSError) as e:
        print(f"{sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(1)
