"""What the end-to-end scripts share: a free port, a JSON call to the
service, and polling with a deadline for what happens in its own time."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url, body=None, token=None):
    """A JSON request (POST when there is a body), its JSON answer."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    method = "POST" if body is not None else "GET"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


def until(what, check, deadline, every=0.5):
    """Polls `check` until it returns something, or fails after `deadline` s."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(every)
    sys.exit(f"FAILED: {what} within {deadline} s")


def serve(binary, port, data_dir, admin, log):
    """`shopstream serve` on `port` with its data in `data_dir`, the first
    admin `admin` ({"email", "password"}), rate limits off, its output to
    `log` (an open file)."""
    env = dict(
        os.environ,
        SHOPSTREAM_DATA_DIR=data_dir,
        SHOPSTREAM_HTTP_ADDR=f"127.0.0.1:{port}",
        SHOPSTREAM_ADMIN_EMAIL=admin["email"],
        SHOPSTREAM_ADMIN_PASSWORD=admin["password"],
        SHOPSTREAM_RATE_LIMITS="off",
        SHOPSTREAM_LOG__FILTER="warn",
    )
    env.pop("RUST_LOG", None)
    return subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)
