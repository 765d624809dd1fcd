"""One flag system (moed::cli) in moed, moectl, moe-bench and moe-run: each answers --help (listing its flags) and
--version (version and git revision), refuses a bad value with one '<binary>: ' line naming the flag and exit code
2, and a boolean flag never takes the next argument. No daemon is needed: every case stops before any call."""
import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("MOED_BUILD_DIR", ROOT / "build"))
MODEL = str(ROOT / "models" / "fortune-moe")
UNREACHABLE = "127.0.0.1:1"  # never dialled: every case below fails or stops before the first call

# binary → (flags its --help must list, a bad value and the flag it must name, a boolean followed by a flag whose
# bad value must be reported with that exact message: were the next argument swallowed, the error would be about
# the boolean's value instead)
CASES = {
    "moed": (["--stream-stall-timeout", "--expert-cache-prefetch", "MOED_PORT"],
             ["--port", "abc"], "--port",
             ["--enable-reflection", "--max-queue", "lots"], "--max-queue: invalid value 'lots'"),
    "moectl": (["--addr", "--stop", "--json", "--timeout", "MOECTL_ADDR", "generate", "plan-ep"],
               ["--timeout", "soon", "info"], "--timeout",
               ["--json", "--max-tokens", "ten", "generate", "hi"], "--max-tokens: invalid value 'ten'"),
    "moe-bench": (["--concurrency", "--shared-prefix-len", "--ignore-eos", "--tls-ca"],
                  ["--rate", "fast"], "--rate",
                  ["--ignore-eos", "--concurrency", "0"], "--concurrency must be >= 1"),
    "moe-run": (["--model", "--expert-cache-prefetch", "--stats-out"],
                ["--model", MODEL, "--prompt", "x", "--top-k", "some"], "--top-k",
                ["--model", MODEL, "--prompt", "x", "--json", "--max-tokens", "-3"],
                "--max-tokens must be an integer ≥ 0, got -3"),
}


def run(name, *args):
    path = BUILD / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (MOED_BUILD_DIR={BUILD})")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOED_", "MOECTL_"))}
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60, env=env)


def assert_usage_error(out, name, needle):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stderr.startswith(f"{name}: ") and out.stderr.count("\n") == 1, out.stderr
    assert needle in out.stderr, out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize("name", CASES)
def test_help_lists_the_flags_and_wins_over_bad_flags(name):
    listed = CASES[name][0]
    for args in (["--help"], ["-h"], ["--no-such-flag", "--help"]):
        out = run(name, *args)
        assert out.returncode == 0 and out.stdout.startswith(f"usage: {name}"), (args, out.stderr)
        for flag in listed:
            assert flag in out.stdout, (flag, out.stdout)


@pytest.mark.parametrize("name", CASES)
def test_version_prints_version_and_revision(name):
    out = run(name, "--version")
    assert out.returncode == 0 and re.fullmatch(rf"{name} \d+\.\d+\.\d+ \(revision \S+\)\n", out.stdout), out.stdout


@pytest.mark.parametrize("name", CASES)
def test_bad_value_names_the_flag_in_one_line_exit_2(name):
    _, bad, needle, _, _ = CASES[name]
    extra = ["--addr", UNREACHABLE] if name in ("moectl", "moe-bench") else []
    assert_usage_error(run(name, *extra, *bad), name, needle)
    assert_usage_error(run(name, *extra, "--no-such-flag=1"), name, "unknown flag --no-such-flag")


@pytest.mark.parametrize("name", CASES)
def test_a_boolean_never_takes_the_next_argument(name):
    _, _, _, args, needle = CASES[name]
    extra = ["--addr", UNREACHABLE] if name in ("moectl", "moe-bench") else []
    assert_usage_error(run(name, *extra, *args), name, needle)


def test_a_boolean_before_a_positional_leaves_it_positional():
    # moe-run takes no positionals: 'yes' after a boolean is an unexpected argument, not the boolean's value.
    assert_usage_error(run("moe-run", "--model", MODEL, "--prompt", "x", "--expert-cache-prefetch", "yes"),
                       "moe-run", "unexpected argument 'yes'")
    # moectl's COMMAND may follow a boolean: --ignore-eos does not eat 'generate', so generate itself complains.
    assert_usage_error(run("moectl", "--addr", UNREACHABLE, "--ignore-eos", "generate"), "moectl",
                       "generate needs exactly one of")
