"""Policy checks on rendered moed manifests: restricted security, probes, drain budget, GPU, wiring.

violations(objects, gpu) returns one line per broken rule (empty = compliant), so tests can also show that
each rule catches a broken manifest.
"""
import re

GRPC_HEALTH_SERVICES = {"", "moed.v1.Moed"}
ALERT_JOB = "moed"  # deploy/prometheus/alerts.yaml selects up{job="moed"}; the Operator's job is the Service name


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind, name=None):
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def parse_duration(text):
    """absl/Go duration ("30s", "1m30s", "500ms", "1h") → seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def prestop_seconds(container):
    """Seconds the preStop hook sleeps: the native sleep action or an exec of `sleep N`."""
    pre = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre:
        return pre["sleep"]["seconds"]
    cmd = pre.get("exec", {}).get("command", [])
    if len(cmd) == 2 and cmd[0].endswith("sleep"):
        return float(cmd[1])
    return None


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def _container_security(c, pod_sc):
    sc = c.get("securityContext", {})
    where = f"container {c['name']}"
    out = []
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{where}: allowPrivilegeEscalation must be false")
    if sc.get("privileged"):
        out.append(f"{where}: privileged")
    caps = sc.get("capabilities", {})
    if caps.get("drop") != ["ALL"] or caps.get("add"):
        out.append(f"{where}: capabilities must drop ALL and add none")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(f"{where}: readOnlyRootFilesystem must be true")
    if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
        out.append(f"{where}: runAsNonRoot must be true")
    if sc.get("runAsUser", pod_sc.get("runAsUser", 0)) == 0:
        out.append(f"{where}: runs as uid 0 (or no uid for runAsNonRoot to check)")
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
    if seccomp.get("type") != "RuntimeDefault":
        out.append(f"{where}: seccompProfile must be RuntimeDefault")
    for key in ("requests", "limits"):
        if "memory" not in c.get("resources", {}).get(key, {}):
            out.append(f"{where}: resources.{key}.memory missing")
    return out


def _probes(c, grpc_port):
    out = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c.get(kind)
        if not probe:
            out.append(f"{kind} missing")
            continue
        grpc = probe.get("grpc")
        if grpc is None:
            out.append(f"{kind} is not a native gRPC probe")
            continue
        if not isinstance(grpc.get("port"), int) or grpc["port"] != grpc_port:
            out.append(f"{kind}.grpc.port must be the integer gRPC port {grpc_port}, got {grpc.get('port')!r}")
        if grpc.get("service", "") not in GRPC_HEALTH_SERVICES:
            out.append(f"{kind}.grpc.service {grpc.get('service')!r} is not a moed health service")
    if c.get("readinessProbe", {}).get("grpc", {}).get("service") != "moed.v1.Moed":
        out.append("readinessProbe must check service moed.v1.Moed (NOT_SERVING while draining)")
    return out


def violations(objects, gpu):
    """Every policy rule the rendered objects break; gpu: whether this overlay must request a GPU."""
    out = []
    deploy = one(objects, "Deployment", "moed")
    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    pod_labels = pod["metadata"]["labels"]
    pod_sc = spec.get("securityContext", {})
    if pod_sc.get("runAsNonRoot") is not True:
        out.append("pod securityContext.runAsNonRoot must be true")
    if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        out.append("pod seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        out.append("automountServiceAccountToken must be false")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        out.append("pod uses host namespaces")

    main = [c for c in spec["containers"] if c["name"] == "moed"]
    if len(main) != 1:
        return out + ["no container named moed"]
    main = main[0]
    for c in spec["containers"] + spec.get("initContainers", []):
        out += _container_security(c, pod_sc)

    # Flags come from the generated ConfigMap the container reads.
    refs = [e["configMapRef"]["name"] for e in main.get("envFrom", []) if "configMapRef" in e]
    maps = [cm for cm in by_kind(objects, "ConfigMap") if cm["metadata"]["name"] in refs]
    if len(maps) != 1:
        return out + [f"container moed must read exactly one rendered ConfigMap of flags, has {refs}"]
    flags = maps[0]["data"]
    grpc_port, metrics_port = int(flags["MOED_PORT"]), int(flags["MOED_METRICS_PORT"])
    health_port = int(flags.get("MOED_HEALTH_PORT", "0"))
    http_port = int(flags.get("MOED_HTTP_PORT", "0"))
    ports = {p["name"]: p["containerPort"] for p in main.get("ports", [])}
    want_ports = {"grpc": grpc_port, "metrics": metrics_port}
    if health_port:
        want_ports["health"] = health_port
    if http_port:
        want_ports["http"] = http_port
    else:
        out.append("MOED_HTTP_PORT must be set: deploy/ serves the OpenAI HTTP API")
    if ports != want_ports:
        out.append(f"container ports {ports} differ from the ConfigMap's ports {want_ports}")
    # With a plaintext health-only port (a TLS gRPC port), the probes must use it: kubelet cannot speak TLS.
    if flags.get("MOED_TLS_CERT") and not health_port:
        out.append("MOED_TLS_CERT without MOED_HEALTH_PORT: kubelet's gRPC probes cannot speak TLS")
    out += _probes(main, health_port or grpc_port)
    if flags.get("MOED_ENABLE_REFLECTION", "false").lower() in ("true", "1", "yes"):
        out.append("MOED_ENABLE_REFLECTION must stay off in deploy/")
    policies = by_kind(objects, "NetworkPolicy")
    if not any(p["spec"].get("podSelector", {}).get("matchLabels", {}).items() <= pod_labels.items()
               and p["spec"].get("podSelector", {}).get("matchLabels") for p in policies):
        out.append("no NetworkPolicy selects the moed pods")

    # Drain: the pod must outlive the preStop sleep plus the daemon's shutdown timeout.
    sleep = prestop_seconds(main)
    if sleep is None:
        out.append("preStop sleep missing")
    else:
        drain = sleep + parse_duration(flags["MOED_SHUTDOWN_TIMEOUT"])
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace < drain:
            out.append(f"terminationGracePeriodSeconds {grace} < preStop {sleep}s + shutdown timeout "
                       f"{flags['MOED_SHUTDOWN_TIMEOUT']}")

    # Read-only root: /tmp is an emptyDir; the model directory is on a mounted volume.
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
    if "emptyDir" not in volumes.get(mounts.get("/tmp"), {}):
        out.append("/tmp must be an emptyDir mount")
    model_mounts = [p for p in mounts if flags["MOED_MODEL"].startswith(p.rstrip("/") + "/")]
    if not model_mounts:
        out.append(f"MOED_MODEL {flags['MOED_MODEL']} is not on a mounted volume")
    else:
        volume = volumes[mounts[model_mounts[0]]]
        filled = any(m["name"] == mounts[model_mounts[0]] for ic in spec.get("initContainers", [])
                     for m in ic.get("volumeMounts", []))
        if "persistentVolumeClaim" not in volume and not ("emptyDir" in volume and filled):
            out.append("the model volume must be a PVC or an emptyDir filled by an init container")

    # GPU only where asked for, anywhere in the pod.
    gpu_limit = main.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    if gpu and not (gpu_limit and int(gpu_limit) >= 1):
        out.append("gpu overlay: container moed has no nvidia.com/gpu limit")
    if gpu and flags.get("MOED_BACKEND") != "cuda":
        out.append("gpu overlay: MOED_BACKEND must be cuda")
    if not gpu:
        for c in spec["containers"] + spec.get("initContainers", []):
            res = c.get("resources", {})
            if any("nvidia.com/gpu" in res.get(k, {}) for k in ("limits", "requests")):
                out.append(f"cpu overlay: container {c['name']} requests a GPU")
        if flags.get("MOED_BACKEND") != "cpu":
            out.append("cpu overlay: MOED_BACKEND must be cpu")

    out += _wiring(objects, pod_labels, deploy)
    return out


def _wiring(objects, pod_labels, deploy):
    """Services, PDB, ServiceMonitor and HPA point at the pods and ports that exist."""
    out = []
    svc = one(objects, "Service", "moed")
    headless = one(objects, "Service", "moed-headless")
    if svc["spec"].get("type", "ClusterIP") != "ClusterIP" or svc["spec"].get("clusterIP") == "None":
        out.append("Service moed must be a ClusterIP service")
    if headless["spec"].get("clusterIP") != "None":
        out.append("Service moed-headless must be headless (clusterIP: None)")
    for s in (svc, headless):
        if not selects(s["spec"]["selector"], pod_labels):
            out.append(f"Service {s['metadata']['name']} does not select the moed pods")
    if {p["name"] for p in svc["spec"]["ports"]} != {"grpc", "http", "metrics"}:
        out.append("Service moed must expose ports grpc, http and metrics")
    if "grpc" not in {p["name"] for p in headless["spec"]["ports"]}:
        out.append("Service moed-headless must expose port grpc")
    pdb = one(objects, "PodDisruptionBudget")
    if not selects(pdb["spec"]["selector"]["matchLabels"], pod_labels):
        out.append("PodDisruptionBudget does not select the moed pods")

    sm = one(objects, "ServiceMonitor")
    scraped = [s["metadata"]["name"] for s in by_kind(objects, "Service")
               if selects(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
    if scraped != [ALERT_JOB]:
        out.append(f"ServiceMonitor must select only Service {ALERT_JOB!r} (the alerts' job), selects {scraped}")
    if [e["port"] for e in sm["spec"]["endpoints"]] != ["metrics"]:
        out.append("ServiceMonitor must scrape the metrics port")

    hpa = one(objects, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    if (ref["kind"], ref["name"]) != ("Deployment", deploy["metadata"]["name"]):
        out.append("HPA does not scale the moed Deployment")
    if "replicas" in deploy["spec"]:
        out.append("Deployment sets replicas while an HPA owns the count")
    return out
