"""Fixtures of the daemon integration tests: one shared moed for most tests (stopped with SIGTERM at
the end of the session, asserting exit code 0) and a factory for daemons with their own flags."""

from __future__ import annotations

import pytest

from moed_harness import Daemon

# Limits set explicitly so that the validation tests know them without reading defaults.
SHARED_FLAGS = ("--max-stop-strings", "4", "--max-stop-length", "16", "--max-prompt-bytes", "4096",
                "--max-tokens-limit", "512", "--max-logprobs", "5")


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("moed-shared"), *SHARED_FLAGS).start()
    yield d
    rc = d.stop()
    assert rc == 0, f"moed exited with {rc} after SIGTERM:\n{d.log_tail()}"


@pytest.fixture
def make_daemon(tmp_path):
    """make_daemon(*flags) starts a private moed; it is stopped (or killed) when the test ends."""
    started = []

    def start(*flags: str, wait_health: bool = True) -> Daemon:
        d = Daemon(tmp_path / f"moed-{len(started)}", *flags).start(wait_health=wait_health)
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()
