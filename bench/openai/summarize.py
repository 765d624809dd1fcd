"""bench/openai/run.sh's table: guidellm's report (OpenAI HTTP) and moe-bench's (gRPC) per concurrency, as markdown.

    python3 bench/openai/summarize.py OUT_DIR 1 8 32     reads OUT_DIR/guidellm-c<C>.json and moe-bench-c<C>.json

Figures, each from the tool's own report (times in ms, rates in tokens/s):
- tokens / request: prompt + output tokens per successful request, as the server's usage counted them (guidellm
  makes its prompts from text to a token count by its tokenizer, the model's; moe-bench sends random ids).
- output tok/s: output tokens of the successful requests ÷ the benchmark's wall time (guidellm: its end_time −
  start_time and output_token_count; moe-bench: output_tokens_per_s).
- TTFT p50 / p99: request sent → first token received, over requests.
- ITL p50, one definition for both: each request's (last − first token time) ÷ (tokens − 1), median over requests
  (guidellm's inter_token_latency_ms, weighted by tokens − 1, equal weights here as every request has the same
  length; moe-bench's tpot_ms).
- gap p50: moe-bench only, the median gap between consecutive tokens over all gaps (its itl_ms).
- CPU s, load generator / moed: user + system seconds each process used during the run (run.sh measures them:
  both share the machine's cores, so a hungrier client leaves less to the server).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def guidellm_row(path: Path) -> dict:
    (b,) = json.loads(path.read_text())["benchmarks"]  # one concurrency level per file
    m, totals = b["metrics"], b["request_totals"]
    out = m["output_token_count"]["successful"]
    return {"ok": totals["successful"], "failed": totals["errored"] + totals["incomplete"],
            "in_per_req": m["prompt_token_count"]["successful"]["mean"], "out_per_req": out["mean"],
            "tok_s": out["total_sum"] / (b["end_time"] - b["start_time"]),
            "ttft_p50": m["time_to_first_token_ms"]["successful"]["median"],
            "ttft_p99": m["time_to_first_token_ms"]["successful"]["percentiles"]["p99"],
            "itl_p50": m["inter_token_latency_ms"]["successful"]["median"], "gap_p50": None}


def moe_bench_row(path: Path) -> dict:
    r = json.loads(path.read_text())
    ok = r["requests"]["ok"]
    return {"ok": ok, "failed": r["requests"]["failed"], "in_per_req": r["input_tokens"] / max(ok, 1),
            "out_per_req": r["output_tokens"] / max(ok, 1),
            "tok_s": r["output_tokens_per_s"], "ttft_p50": r["ttft_ms"]["p50"], "ttft_p99": r["ttft_ms"]["p99"],
            "itl_p50": r["tpot_ms"]["p50"], "gap_p50": r["itl_ms"]["p50"]}


def cpu(path: Path) -> str:
    client, server = path.read_text().split()
    return f"{float(client):.1f} / {float(server):.1f}"


def main(argv: list[str]) -> int:
    out, levels = Path(argv[1]), argv[2:]
    print("| load generator (API) | concurrency | requests ok / failed | tokens / request in + out | output tok/s "
          "| TTFT p50 ms | TTFT p99 ms | ITL p50 ms | gap p50 ms | CPU s, load generator / moed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in levels:
        for name, tool, parse in (("guidellm 0.3.1 (OpenAI HTTP)", "guidellm", guidellm_row),
                                  ("moe-bench (gRPC)", "moe-bench", moe_bench_row)):
            row = parse(out / f"{tool}-c{c}.json")
            gap = "–" if row["gap_p50"] is None else f"{row['gap_p50']:.2f}"
            print(f"| {name} | {c} | {row['ok']} / {row['failed']} "
                  f"| {row['in_per_req']:.1f} + {row['out_per_req']:.1f} | {row['tok_s']:.0f} "
                  f"| {row['ttft_p50']:.1f} | {row['ttft_p99']:.1f} | {row['itl_p50']:.2f} | {gap} "
                  f"| {cpu(out / f'{tool}-c{c}.cpu')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
