"""The metric families moed exports (issue 3: serving and experts; issue 6: expert cache), by Prometheus type.

The live test checks this list against a running moed in both directions, so it cannot drift silently.
"""

SERVING = {
    "moed_info": "gauge",
    "moed_build_info": "gauge",
    "moed_requests_total": "counter",
    "moed_requests_rejected_total": "counter",
    "moed_requests_running": "gauge",
    "moed_streams_open": "gauge",
    "moed_requests_waiting": "gauge",
    "moed_time_to_first_token_seconds": "histogram",
    "moed_inter_token_latency_seconds": "histogram",
    "moed_request_duration_seconds": "histogram",
    "moed_queue_time_seconds": "histogram",
    "moed_batch_tokens": "histogram",
    "moed_prompt_tokens_total": "counter",
    "moed_generated_tokens_total": "counter",
    "moed_kv_cache_usage_ratio": "gauge",
    "moed_kv_cache_blocks_used": "gauge",
    "moed_kv_cache_blocks_capacity": "gauge",  # not _total: promtool rejects _total on a gauge
    "moed_preemptions_total": "counter",
    "moed_prefix_cache_queries_total": "counter",  # issue 17: prefix caching, in tokens
    "moed_prefix_cache_hits_total": "counter",
    "moed_engine_step_seconds": "histogram",
    "moed_engine_steps_total": "counter",
    # vLLM-style request metrics with a model_name label (issue 16).
    "moed_requests_finished_total": "counter",
    "moed_request_prompt_tokens": "histogram",
    "moed_request_generation_tokens": "histogram",
}

# moed_expert_{tokens,dropped_tokens}_total exist while --metrics-per-expert allows per-expert series;
# otherwise moed_layer_{tokens,dropped_tokens}_total carry the per-layer totals.
EXPERTS = {
    "moed_expert_tokens_total": "counter",
    "moed_expert_dropped_tokens_total": "counter",
    "moed_layer_tokens_total": "counter",
    "moed_layer_dropped_tokens_total": "counter",
    "moed_expert_load_ratio": "histogram",
    "moed_expert_imbalance_ratio": "gauge",
    # Balance per MoE layer and window (issue 16).
    "moed_expert_load_gini": "gauge",
    "moed_expert_load_entropy": "gauge",
    "moed_expert_load_max_mean_ratio": "gauge",
    "moed_expert_load_cv": "gauge",
    "moed_expert_load_assignments": "gauge",
    # Specialization: computed tokens per expert by token class (while within the per-expert series budget).
    "moed_expert_token_class_total": "counter",
}

CACHE = {
    "moed_expert_cache_hits_total": "counter",
    "moed_expert_cache_misses_total": "counter",
    "moed_expert_cache_evictions_total": "counter",
    "moed_expert_cache_loads_total": "counter",
    "moed_expert_cache_prefetches_total": "counter",
    "moed_expert_cache_resident_experts": "gauge",
    "moed_expert_cache_capacity_experts": "gauge",
    "moed_expert_cache_load_seconds": "histogram",
    "moed_expert_cache_transfer_bytes_total": "counter",
    "moed_expert_cache_stall_seconds_total": "counter",
}

# The standard process collector's families (named as every Prometheus client library names them).
PROCESS = {
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
}

FAMILIES = {**SERVING, **EXPERTS, **CACHE, **PROCESS}


def sample_names(families):
    """Family name → the sample names a scrape shows (histograms: _bucket, _sum, _count)."""
    names = {}
    for family, kind in families.items():
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        for suffix in suffixes:
            names[family + suffix] = family
    return names


SAMPLES = sample_names(FAMILIES)
