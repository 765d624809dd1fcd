"""Starts a moed for a bench script: on loopback with free ports, waiting for its serving line."""
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def start_moed(build, flags, log, who, timeout=60):
    """Starts `build`/moed with `flags` (after --host 127.0.0.1 --port 0 --metrics-port 0), its output to `log` (an
    open file). Returns (process, "127.0.0.1:PORT" of gRPC, metrics URL). Exits the calling script, naming `who`,
    with moed's output when it does not come up within `timeout` seconds."""
    cmd = [str(build / "moed"), "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", *flags]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"on (127\.0\.0\.1:\d+), metrics on (\S+):(\d+)", pathlib.Path(log.name).read_text())
        if m:
            return proc, m.group(1), f"http://127.0.0.1:{m.group(3)}/metrics"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"{who}: moed did not start:\n" + pathlib.Path(log.name).read_text())
