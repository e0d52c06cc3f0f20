"""Hostile clients against a running `cargo xtask serve`, measured from outside the server.

    python3 benches/hostile_clients.py --port 8080 --pid PID [--connections 500]

Opens the connections (a third sending part of a request's headers, a third a POST's headers
announcing 100,000 bytes of body and 3 of them, a third nothing), then times a normal
`GET /healthz` and `POST /api/predict` (10 s client timeout each) and reads the server's threads
and resident memory from /proc/PID/status (Linux). Loopback only; it stops by itself.
"""

import argparse
import http.client
import os
import socket
import time

OPENINGS = [
    b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Ty",
    b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89PN",
    b"",
]


def footprint(pid):
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--connections", type=int, default=500)
    ap.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "../crates/data/tests/images/ankle-boot.png"))
    args = ap.parse_args()
    image = open(args.image, "rb").read()
    held = []
    for i in range(args.connections):
        s = socket.create_connection(("127.0.0.1", args.port))
        s.sendall(OPENINGS[i % 3])
        held.append(s)
    time.sleep(1)
    threads, rss = footprint(args.pid)
    print(f"{len(held)} hostile connections open: the server has {threads} threads, {rss:.0f} MB resident")
    for method, path, body in [("GET", "/healthz", None), ("POST", "/api/predict", image)]:
        start = time.time()
        try:
            c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
            c.request(method, path, body=body, headers={"Content-Type": "image/png"} if body else {})
            r = c.getresponse()
            r.read()
            print(f"{method} {path}: {r.status} in {(time.time() - start) * 1e3:.1f} ms")
        except Exception as e:
            print(f"{method} {path}: no answer ({e}) after {time.time() - start:.1f} s")
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
