"""vLLM-style serving metrics (issue 16): finished requests by finish reason, prompt and generation length
histograms with a model_name label, and process_* metrics read from /proc for the daemon's own process."""
import os

from moed_harness import MODEL_DIR


def test_finished_by_reason_and_lengths(daemon):
    name = MODEL_DIR.name
    before = daemon.metrics()
    c = daemon.client.complete("Count the finished requests", temperature=0, max_tokens=5, ignore_eos=True,
                               timeout=60)
    after = daemon.metrics()  # counted before the last message is handed to the stream

    def delta(metric, **labels):
        return after.get(metric, model_name=name, **labels) - before.get(metric, model_name=name, **labels)

    assert delta("moed_requests_finished_total", finish_reason="length") == 1
    assert delta("moed_requests_finished_total", finish_reason="eos") == 0
    assert delta("moed_request_prompt_tokens_sum") == c.prompt_tokens
    assert delta("moed_request_generation_tokens_sum") == 5
    assert delta("moed_request_generation_tokens_bucket", le="5") == 1
    assert delta("moed_request_generation_tokens_bucket", le="2") == 0
    assert after.get("moed_info", model_name=name) == 1


def test_process_metrics_describe_the_daemon(daemon):
    m = daemon.metrics()
    pid = daemon.proc.pid
    with open(f"/proc/{pid}/statm") as f:
        rss_pages = int(f.read().split()[1])
    rss = m.get("process_resident_memory_bytes")
    # Refreshed once a second: within 25% of what /proc says now for the same process.
    assert abs(rss - rss_pages * os.sysconf("SC_PAGE_SIZE")) < 0.25 * rss
    assert 3 <= m.get("process_open_fds") <= m.get("process_max_fds")
    assert m.get("process_cpu_seconds_total") > 0
    assert abs(m.get("process_start_time_seconds") - os.stat(f"/proc/{pid}").st_ctime) < 120
