"""Serving rows of the peer comparison: moed driven by moe-bench and llama-server driven by an equivalent client.

Both servers run pinned to the same cores (taskset -c 0-1) with the same thread count, serve the same prompts (token
ids written once to a file: moe-bench --prompt-ids-file, and the same ids as llama-server's `prompt` array), greedy,
the same max tokens with end-of-sequence ignored, a closed loop of C streams. Each run starts its own server (moed
with its defaults; llama-server with C slots of prompt + output tokens each), sends one warm-up request, then the
measured requests. Output tokens per wall second and per CPU-second of the server process (utime + stime from
/proc, over the measured requests only; the client's CPU time is not counted for either engine).
"""
import http.client
import json
import os
import pathlib
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from moed_process import start_moed  # noqa: E402

CORES = "0-1"


def write_prompt_ids(path, count, length, vocab, seed=1):
    """`count` prompts of `length` random ids in [3, vocab), one line each (ids 0..2 are the usual specials)."""
    rng = random.Random(seed)
    lines = [" ".join(str(rng.randrange(3, vocab)) for _ in range(length)) for _ in range(count)]
    pathlib.Path(path).write_text("\n".join(lines) + "\n")
    return [[int(t) for t in line.split()] for line in lines]


def cpu_seconds(pid):
    """utime + stime of process `pid` (all its threads), in seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moed_serve(build, model_dir, threads, ids_file, concurrency, requests, output_len, log_dir, kernels="fast"):
    log = open(pathlib.Path(log_dir) / f"moed-{concurrency}.log", "w")
    proc, addr, _ = start_moed(build, ["--model", model_dir, "--backend", "cpu", "--threads", str(threads),
                                       "--cpu-kernels", kernels], log,
                               "serve.py")
    try:
        subprocess.run(["taskset", "-p", "-a", "-c", CORES, str(proc.pid)], check=True, capture_output=True)
        bench = [str(build / "moe-bench"), "--addr", addr, "--prompt-ids-file", str(ids_file), "--output-len",
                 str(output_len), "--ignore-eos", "--temperature", "0"]
        subprocess.run(bench + ["--concurrency", "1", "--num-requests", "1"], check=True, capture_output=True)
        c0 = cpu_seconds(proc.pid)
        out = subprocess.run(["taskset", "-c", CORES] + bench + ["--concurrency", str(concurrency),
                             "--num-requests", str(requests)], check=True, capture_output=True, text=True)
        cpu = cpu_seconds(proc.pid) - c0
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    r = json.loads(out.stdout)
    if r["requests"]["failed"]:
        raise RuntimeError(f"moe-bench errors: {r['errors']}")
    return {"output_tokens": r["output_tokens"], "wall_s": r["duration_s"], "server_cpu_s": cpu}


def _llama_post(conn, body):
    conn.request("POST", "/completion", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"llama-server {resp.status}: {data[:300]!r}")
    return json.loads(data)


def llama_client(port, prompts, concurrency, requests, output_len):
    """Closed loop of `concurrency` streams over `requests` requests (request i gets prompt i mod len(prompts)), each
    its own keep-alive connection. Returns (output tokens, wall seconds)."""
    next_index = [0]
    lock = threading.Lock()
    tokens = [0]
    errors = []

    def stream():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= requests:
                return
            try:
                r = _llama_post(conn, {"prompt": prompts[i % len(prompts)], "n_predict": output_len,
                                       "temperature": 0, "ignore_eos": True, "cache_prompt": False,
                                       "stream": False})
            except Exception as e:  # reported after the run
                errors.append(str(e))
                return
            with lock:
                tokens[0] += r["tokens_predicted"]

    t0 = time.perf_counter()
    threads = [threading.Thread(target=stream) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"llama-server client errors: {errors[:3]}")
    return tokens[0], wall


def llama_serve(server, gguf, threads, prompts, concurrency, requests, output_len, log_dir):
    port = free_port()
    ctx = concurrency * (len(prompts[0]) + output_len + 16)
    log = open(pathlib.Path(log_dir) / f"llama-{concurrency}.log", "w")
    proc = subprocess.Popen(["taskset", "-c", CORES, str(server), "-m", gguf, "--host", "127.0.0.1", "--port",
                             str(port), "-t", str(threads), "-tb", str(threads), "-np", str(concurrency), "-c",
                             str(ctx)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("llama-server did not start:\n" + pathlib.Path(log.name).read_text()[-3000:])
            time.sleep(0.1)
        _llama_post(http.client.HTTPConnection("127.0.0.1", port, timeout=600),
                    {"prompt": prompts[0], "n_predict": output_len, "temperature": 0, "ignore_eos": True,
                     "cache_prompt": False})
        c0 = cpu_seconds(proc.pid)
        tokens, wall = llama_client(port, prompts, concurrency, requests, output_len)
        cpu = cpu_seconds(proc.pid) - c0
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    return {"output_tokens": tokens, "wall_s": wall, "server_cpu_s": cpu}


def serve_round(build, server, model_dir, gguf, vocab, threads, levels, prompt_len, output_len,
                min_requests=8, kernels="fast"):
    """One interleaved round over every concurrency level: moed (--cpu-kernels `kernels`, engine "moed-<kernels>")
    then llama.cpp at each, max(min_requests, 3·C) requests at concurrency C. Yields result dicts."""
    with tempfile.TemporaryDirectory() as tmp:
        requests = {c: max(min_requests, 3 * c) for c in levels}
        ids_file = pathlib.Path(tmp) / "prompt_ids.txt"
        prompts = write_prompt_ids(ids_file, max(requests.values()), prompt_len, vocab)
        for c in levels:
            for engine in (f"moed-{kernels}", "llama.cpp"):
                if engine != "llama.cpp":
                    r = moed_serve(build, model_dir, threads, ids_file, c, requests[c], output_len, tmp, kernels)
                else:
                    r = llama_serve(server, gguf, threads, prompts, c, requests[c], output_len, tmp)
                r.update({"engine": engine, "concurrency": c, "requests": requests[c], "prompt_len": prompt_len,
                          "output_len": output_len,
                          "output_tok_s": r["output_tokens"] / r["wall_s"],
                          "output_tok_per_cpu_s": r["output_tokens"] / r["server_cpu_s"]})
                yield r


def vocab_of(model_dir):
    return json.loads((pathlib.Path(model_dir) / "config.json").read_text())["vocab_size"]

