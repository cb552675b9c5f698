"""Kubernetes manifests (``deploy/k8s``) rendered and checked offline, against the code and the measured numbers.

No cluster here: both kustomizations are rendered with ``kubectl kustomize``; the built-in kinds are validated
with ``kubernetes-validate``'s schemas in strict mode (unknown fields are errors, as ``kubectl apply`` makes them),
KEDA's and the Prometheus Operator's kinds against their CRDs' OpenAPI schemas in ``../shared/schemas`` with
Kubernetes' structural rules (an unknown field is an error there too). Then the properties that matter: settings
that exist, credentials only from the Secret, the hardening, probes on the real routes and port, sizes and scaling
derived from ``deploy/k8s/sizing.json``, selectors that select, a NetworkPolicy that allows only what the worker
needs, and a PrometheusRule that is ``deploy/prometheus/alerts.yml``.

What only a real cluster can show (KEDA scaling, probe timing, the PDB during a drain, the CNI enforcing the
NetworkPolicy) is listed in README.md, "Kubernetes".
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from streamer.http import Health, MetricsServer
from streamer.settings import Settings, unknown_variables

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
EXAMPLE = K8S / "overlays" / "example"
SCHEMAS = ROOT.parent / "shared" / "schemas"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SIZING: dict[str, Any] = json.loads((K8S / "sizing.json").read_text())
MEASURED, CHOSEN, DERIVED = SIZING["measured"], SIZING["chosen"], SIZING["derived"]

KUBECTL = shutil.which("kubectl")
# The newest Kubernetes kubernetes-validate 1.37 ships, and an older one still in use: every built-in kind must be
# valid on both (pyproject pins kubernetes-validate>=1.37 so the newest is there).
KUBE_VERSIONS = ("1.37", "1.30")
CRD_GROUPS = {"keda.sh", "monitoring.coreos.com"}
WORKER_JOB = "newsstream-worker"  # the scrape job the alerts and the dashboard match (deploy/localprom.py)
SETTING_VARS = {"NEWSSTREAM_" + name.upper() for name in Settings.model_fields}
# KEDA's spellings of the worker's SASL mechanism (its TriggerAuthentication parameter `sasl`)
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}

pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl is not installed, so the kustomizations cannot be rendered (as root, "
    "`bash deploy/system-deps.sh` installs the package `kubectl`)",
)

Objects = list[dict[str, Any]]


# ---- rendering and lookup ----------------------------------------------------------------------------------


@functools.cache
def _render(path: str) -> str:
    assert KUBECTL is not None
    proc = subprocess.run([KUBECTL, "kustomize", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return proc.stdout


def render(path: Path) -> Objects:
    """The rendered objects (a fresh copy: tests may mutate theirs)."""
    return [doc for doc in yaml.safe_load_all(_render(str(path))) if doc]


@pytest.fixture(params=[BASE, EXAMPLE], ids=["base", "example"])
def objs(request: pytest.FixtureRequest) -> Objects:
    return render(request.param)


def group(obj: dict[str, Any]) -> str:
    api = str(obj["apiVersion"])
    return api.split("/")[0] if "/" in api else ""


def one(objs: Objects, kind: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def config(objs: Objects) -> dict[str, str]:
    return dict(one(objs, "ConfigMap")["data"])


def setting(objs: Objects, name: str) -> Any:
    """A setting's value as the worker gets it: the ConfigMap's, else the code's default."""
    var = "NEWSSTREAM_" + name.upper()
    data = config(objs)
    return data[var] if var in data else Settings.model_fields[name].default


def pod_spec(objs: Objects) -> dict[str, Any]:
    return dict(one(objs, "Deployment")["spec"]["template"]["spec"])


def worker(objs: Objects) -> dict[str, Any]:
    containers = pod_spec(objs)["containers"]
    assert [c["name"] for c in containers] == ["worker"]
    return dict(containers[0])


def pod_labels(objs: Objects) -> dict[str, str]:
    return dict(one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are checked here: {selector}"
    match = selector.get("matchLabels") or {}
    assert match, "an empty selector selects every pod in the namespace"
    return all(labels.get(k) == v for k, v in match.items())


def quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+)([A-Za-z]*)", str(q))
    assert m and m.group(2) in {"", *units}, f"unexpected memory quantity {q!r}"
    return int(m.group(1)) * units.get(m.group(2), 1)


def quantity_cores(q: str | int) -> float:
    s = str(q)
    return int(s[:-1]) / 1000 if s.endswith("m") else float(s)


def all_containers(objs: Objects) -> list[dict[str, Any]]:
    spec = pod_spec(objs)
    return [*spec.get("initContainers", []), *spec["containers"]]


def bootstrap_ports(objs: Objects) -> set[int]:
    servers = [s.strip() for s in str(setting(objs, "bootstrap_servers")).split(",") if s.strip()]
    assert servers
    ports = set()
    for server in servers:
        host, sep, port = server.rpartition(":")
        assert sep and host and port.isdigit(), f"bootstrap server {server!r} has no port"
        ports.add(int(port))
    return ports


# ---- rendering -----------------------------------------------------------------------------------------------


BASE_KINDS = {"ConfigMap", "Deployment", "PodDisruptionBudget", "ScaledObject", "TriggerAuthentication",
              "PodMonitor", "PrometheusRule", "NetworkPolicy"}


def test_both_kustomizations_render_with_the_expected_kinds() -> None:
    base, example = render(BASE), render(EXAMPLE)
    assert sorted(o["kind"] for o in base) == sorted(BASE_KINDS)
    assert sorted(o["kind"] for o in example) == sorted(BASE_KINDS | {"Namespace", "Secret"})
    # the base is namespace-agnostic; the overlay puts everything in its namespace
    assert all("namespace" not in o["metadata"] for o in base)
    namespace = one(example, "Namespace")["metadata"]["name"]
    assert all(o["metadata"].get("namespace") == namespace for o in example if o["kind"] != "Namespace")


def test_the_example_overlay_sets_image_brokers_and_a_fake_secret() -> None:
    base, example = render(BASE), render(EXAMPLE)
    assert worker(base)["image"] == "newsstream:0.1.0"  # the tag docker-compose.yml builds
    image = worker(example)["image"]
    repo, _, tag = image.rpartition(":")
    assert repo and "/" in repo and tag and tag != "latest", image
    assert setting(example, "bootstrap_servers") != setting(base, "bootstrap_servers")
    secret = one(example, "Secret")
    assert "stringData" not in secret
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(values) == {"username", "password", "sasl", "tls"}
    # an example, never real credentials: the literals say so
    assert "not-a-real-password" in values["password"] and values["username"].startswith("example")


# ---- schemas ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_builtin_kinds_are_valid_kubernetes_in_strict_mode(objs: Objects, version: str) -> None:
    builtin = [o for o in objs if group(o) not in CRD_GROUPS]
    assert {o["kind"] for o in builtin} >= {"ConfigMap", "Deployment", "PodDisruptionBudget", "NetworkPolicy"}
    for obj in builtin:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on Kubernetes {version}: "
                        f"{'.'.join(map(str, exc.path))}: {exc.message}")


def test_strict_kubernetes_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(one(render(BASE), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {"runAsNonRoot": True}
    with pytest.raises(kubernetes_validate.ValidationError, match="securityContxt"):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


def structural(schema: Any) -> Any:
    """A CRD's OpenAPI v3 schema as JSON Schema with Kubernetes' structural rules.

    The API server prunes (and ``kubectl apply``'s strict field validation rejects) a field that an object schema
    does not declare, unless ``x-kubernetes-preserve-unknown-fields``: such objects get ``additionalProperties:
    false``. ``x-kubernetes-int-or-string`` admits both types. Other ``x-kubernetes-*`` keys (list types, map
    types) change no validity of one object and are dropped; ``x-kubernetes-validations`` (CEL) is dropped here and
    checked by hand where it matters (:func:`cel_rules`).
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = structural(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [structural(sub) for sub in value]
        elif key == "pattern":
            out[key] = python_pattern(value)
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["type"] = ["integer", "string"]
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def python_pattern(pattern: str) -> str:
    """CRD patterns are Go RE2: ``^(?i)(abort|warn)?$`` puts a global flag where Python refuses it; move it."""
    try:
        re.compile(pattern)
        return pattern
    except re.error:
        flags = "".join(re.findall(r"\(\?[a-z]+\)", pattern))
        moved = flags + re.sub(r"\(\?[a-z]+\)", "", pattern)
        re.compile(moved)  # anything else untranslatable fails loudly here
        return moved


CRD_FILES = {
    ("keda.sh", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    if not SCHEMAS.is_dir():
        pytest.skip(f"no CRD schemas at {SCHEMAS} (the shared/ folder beside the repository, see its SOURCE.md)")
    grp, _, version = api_version.partition("/")
    name = CRD_FILES.get((grp, kind))
    assert name, f"no CRD schema known for {api_version} {kind}"
    crd = yaml.safe_load((SCHEMAS / name).read_text())
    assert crd["spec"]["group"] == grp and crd["spec"]["names"]["kind"] == kind
    versions = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert versions and versions[0]["served"], f"{name} does not serve {version}"
    schema = structural(versions[0]["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def cel_rules(obj: dict[str, Any]) -> list[str]:
    """The CRDs' x-kubernetes-validations on the kinds used, by hand (jsonschema has no CEL): ScaledObject's one."""
    errors = []
    if obj["kind"] == "ScaledObject":
        spec = obj["spec"]
        if "minReplicaCount" in spec and spec["minReplicaCount"] > spec.get("maxReplicaCount", 100):
            errors.append("minReplicaCount must be less than or equal to maxReplicaCount")
    return errors


def crd_errors(obj: dict[str, Any]) -> list[str]:
    validator = crd_validator(obj["apiVersion"], obj["kind"])
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
    return errors + cel_rules(obj)


def test_keda_and_prometheus_operator_kinds_match_their_crds(objs: Objects) -> None:
    custom = [o for o in objs if group(o) in CRD_GROUPS]
    assert {o["kind"] for o in custom} == {"ScaledObject", "TriggerAuthentication", "PodMonitor", "PrometheusRule"}
    for obj in custom:
        assert crd_errors(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize(("kind", "breakage", "expected"), [
    ("ScaledObject", lambda o: o["spec"].update(maxReplicasCount=6), "maxReplicasCount"),
    ("ScaledObject", lambda o: o["spec"]["triggers"][0]["metadata"].update(lagThreshold=30000), "30000"),
    ("ScaledObject", lambda o: o["spec"].update(minReplicaCount=7), "minReplicaCount must be less"),
    ("TriggerAuthentication", lambda o: o["spec"]["secretTargetRef"][0].pop("key"), "'key' is a required"),
    ("PodMonitor", lambda o: o["spec"]["podMetricsEndpoints"][0].update(port=9464), "9464"),
    ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].update(fore="2m"), "fore"),
], ids=["misspelt-field", "unquoted-lag-threshold", "min-above-max", "secret-ref-without-key",
        "port-number-in-port", "misspelt-rule-field"])
def test_crd_validation_rejects_broken_objects(kind: str, breakage: Any, expected: str) -> None:
    obj = copy.deepcopy(one(render(BASE), kind))
    assert crd_errors(obj) == []
    breakage(obj)
    errors = crd_errors(obj)
    assert any(expected in e for e in errors), errors


# ---- the worker's configuration ---------------------------------------------------------------------------


def test_every_newsstream_variable_is_a_setting_with_a_valid_value(
        objs: Objects, monkeypatch: pytest.MonkeyPatch) -> None:
    data = config(objs)
    env_names = [e["name"] for c in all_containers(objs) for e in c.get("env", [])]
    names = [*data, *env_names]
    ours = [n for n in names if n.startswith("NEWSSTREAM_")]
    assert ours == [n for n in names if n.upper().startswith("NEWSSTREAM")], "a NEWSSTREAM name in another case"
    assert set(ours) <= SETTING_VARS, f"not settings (the worker exits 2 on these): {set(ours) - SETTING_VARS}"
    assert unknown_variables(dict.fromkeys(ours, "x")) == []
    assert len(ours) == len(set(ours)), "a variable set twice (ConfigMap and env): which wins is easy to misread"
    # the values are valid: the worker's own Settings read them, SASL with a stand-in user from the Secret
    for name in [n for n in os.environ if n.upper().startswith("NEWSSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NEWSSTREAM_SASL_USERNAME", "u")
    monkeypatch.setenv("NEWSSTREAM_SASL_PASSWORD", "p")
    settings = Settings()
    kwargs = settings.security_kwargs()
    assert kwargs["security_protocol"].startswith("SASL_") and kwargs["sasl_plain_password"] == "p"
    # exactly_once's transactional id comes from the host name, which a Deployment's pods do not keep
    assert settings.processing_guarantee == "at_least_once"
    # the probes and the kubelet reach the pod's IP, not loopback
    assert settings.metrics_host == "0.0.0.0"
    # the models the image carries (Dockerfile ENV)
    assert f"NEWSSTREAM_MODEL_PATH={settings.model_path}" in DOCKERFILE.read_text()


def test_the_container_runs_the_worker_command(objs: Objects, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsstream.cli import build_parser

    container = worker(objs)
    assert "command" not in container, "keep the image's ENTRYPOINT (newsstream)"
    assert 'ENTRYPOINT ["newsstream"]' in DOCKERFILE.read_text()
    argv = list(container["args"])
    assert argv[0] == "worker"
    monkeypatch.setattr(sys, "argv", ["newsstream", *argv])
    build_parser().parse_args(argv)


def test_credentials_come_only_from_the_secret(objs: Objects) -> None:
    data = config(objs)
    assert not [k for k in data if re.search(r"PASSWORD|USERNAME|SECRET|TOKEN", k)], "credentials in the ConfigMap"
    secret_names = set()
    for container in all_containers(objs):
        env = {e["name"]: e for e in container.get("env", [])}
        for name in ("NEWSSTREAM_SASL_USERNAME", "NEWSSTREAM_SASL_PASSWORD"):
            assert name in env, f"{name} not set"
            assert "value" not in env[name], f"{name} has a literal value"
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert not ref.get("optional"), f"{name}: a missing Secret must stop the pod, not start it without"
            secret_names.add(ref["name"])
        for name, entry in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN", name):
                assert "value" not in entry and "secretKeyRef" in entry.get("valueFrom", {}), name
        for source in container.get("envFrom", []):
            assert "secretRef" not in source, "a whole Secret as environment would pass KEDA's keys as variables"
    assert len(secret_names) == 1
    # KEDA reads the lag with the same credentials, from the same Secret
    refs = one(objs, "TriggerAuthentication")["spec"]["secretTargetRef"]
    assert {r["parameter"] for r in refs} == {"sasl", "username", "password", "tls"}
    assert {r["name"] for r in refs} == secret_names
    assert {r["parameter"]: r["key"] for r in refs if r["parameter"] in ("username", "password")} == {
        "username": "username", "password": "password"}


def test_the_example_secret_agrees_with_the_worker_settings() -> None:
    example = render(EXAMPLE)
    values = {k: base64.b64decode(v).decode() for k, v in one(example, "Secret")["data"].items()}
    refs = {r["parameter"]: r["key"] for r in one(example, "TriggerAuthentication")["spec"]["secretTargetRef"]}
    assert values[refs["sasl"]] == KEDA_SASL[setting(example, "sasl_mechanism")]
    assert values[refs["tls"]] == ("enable" if str(setting(example, "security_protocol")).endswith("SSL")
                                   else "disable")


# ---- hardening, probes, shutdown, sizes -----------------------------------------------------------------


def test_every_container_is_hardened(objs: Objects) -> None:
    spec = pod_spec(objs)
    pod_sc = spec.get("securityContext", {})
    uid = int(re.search(r"useradd\b.*--uid (\d+)", DOCKERFILE.read_text()).group(1))  # type: ignore[union-attr]
    assert spec.get("automountServiceAccountToken") is False
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    for container in all_containers(objs):
        sc = {**pod_sc, **container.get("securityContext", {})}
        name = container["name"]
        assert sc.get("runAsNonRoot") is True, name
        # the image's USER is a name: the kubelet can only prove non-root from a number, and the models are its
        assert sc.get("runAsUser") == uid, name
        assert sc.get("readOnlyRootFilesystem") is True, name
        assert sc.get("allowPrivilegeEscalation") is False, name
        assert not sc.get("privileged"), name
        assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), name
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        # with a read-only root, every writable path is a bounded emptyDir
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            assert set(volume) == {"name", "emptyDir"} and volume["emptyDir"].get("sizeLimit"), mount


def test_probes_hit_the_worker_routes_on_the_metrics_port(objs: Objects) -> None:
    container = worker(objs)
    ports = {p["name"]: p for p in container["ports"]}
    assert ports["metrics"]["containerPort"] == int(setting(objs, "metrics_port"))
    assert ports["metrics"].get("protocol", "TCP") == "TCP"
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "metrics"), probe
        assert get.get("scheme", "HTTP") == "HTTP"
    # liveness must not restart a loop that is only quiet for less than the worker's own heartbeat timeout
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 10
    # the routes exist and answer as the probes expect: /healthz 200 on a fresh loop, /readyz 503 before the model
    server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), Health(30.0)).start()
    try:
        host, port = server.address
        assert urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5).status == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=5)
        assert info.value.code == 503
    finally:
        server.stop()


def test_grace_period_outlasts_the_shutdown_budget(objs: Objects) -> None:
    grace = pod_spec(objs)["terminationGracePeriodSeconds"]
    budget = float(setting(objs, "shutdown_timeout_s"))
    assert grace == CHOSEN["termination_grace_period_s"]
    assert grace > budget + CHOSEN["shutdown_margin_s"], (grace, budget)
    assert "preStop" not in worker(objs).get("lifecycle", {}), "a preStop hook would eat into the grace period"


def test_resources_follow_the_measured_numbers(objs: Objects) -> None:
    resources = worker(objs)["resources"]
    requests, limits = resources["requests"], resources.get("limits", {})
    mib = 2**20
    # bench reports VmHWM kB / 1024: MiB
    assert quantity_bytes(requests["memory"]) >= MEASURED["worker_peak_rss_mib"] * mib
    assert quantity_bytes(requests["memory"]) == CHOSEN["memory_request_mib"] * mib
    assert quantity_bytes(limits["memory"]) == CHOSEN["memory_limit_mib"] * mib
    assert quantity_bytes(limits["memory"]) > max(quantity_bytes(requests["memory"]),
                                                  MEASURED["worker_rss_target_mib"] * mib)
    assert quantity_cores(requests["cpu"]) == CHOSEN["cpu_request_cores"] == MEASURED["cores_per_replica_at_full_rate"]
    if CHOSEN["cpu_limit"] is None:
        assert "cpu" not in limits
    else:
        assert quantity_cores(limits["cpu"]) >= quantity_cores(requests["cpu"])


# ---- scaling and disruption -----------------------------------------------------------------------------------


def test_sizing_numbers_are_consistent() -> None:
    assert DERIVED["lag_threshold"] == MEASURED["articles_per_s_per_replica"] * CHOSEN["lag_drain_s"]
    assert DERIVED["max_replicas"] == MEASURED["input_partitions"]
    partitions = {int(p) for p in re.findall(r"--partitions (\d+)", COMPOSE.read_text())}
    assert partitions == {MEASURED["input_partitions"]}
    assert 1 <= CHOSEN["min_replicas"] <= DERIVED["max_replicas"]


def test_keda_scales_on_the_worker_group_lag(objs: Objects) -> None:
    scaled = one(objs, "ScaledObject")
    deployment = one(objs, "Deployment")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target.get("apiVersion"), target.get("kind"), target["name"]) == (
        deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; apply would reset it"
    spec = scaled["spec"]
    assert spec["maxReplicaCount"] == DERIVED["max_replicas"] == MEASURED["input_partitions"]
    assert spec["minReplicaCount"] == CHOSEN["min_replicas"] >= 1
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == setting(objs, "group_id")
    assert meta["topic"] == setting(objs, "input_topic")
    assert meta["bootstrapServers"] == setting(objs, "bootstrap_servers"), (
        "the ScaledObject does not follow the ConfigMap: is components/scaler-follows-config listed, "
        "and kustomize >= 5 (components after the overlay's generators)?")
    assert meta["offsetResetPolicy"] == setting(objs, "auto_offset_reset")
    assert int(meta["lagThreshold"]) == DERIVED["lag_threshold"]
    assert meta.get("allowIdleConsumers", "false") == "false"
    auth = one(objs, "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert trigger["authenticationRef"].get("kind", "TriggerAuthentication") == "TriggerAuthentication"


def test_the_disruption_budget_covers_the_worker_pods(objs: Objects) -> None:
    pdb = one(objs, "PodDisruptionBudget")["spec"]
    assert selects(pdb["selector"], pod_labels(objs))
    assert pdb["selector"] == one(objs, "Deployment")["spec"]["selector"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    # a drain leaves at least one replica consuming
    assert one(objs, "ScaledObject")["spec"]["minReplicaCount"] > pdb["maxUnavailable"]
    assert selects(one(objs, "Deployment")["spec"]["selector"], pod_labels(objs))


# ---- monitoring -----------------------------------------------------------------------------------------------


def test_the_pod_monitor_scrapes_the_metrics_port_as_the_alerts_job(objs: Objects) -> None:
    spec = one(objs, "PodMonitor")["spec"]
    assert selects(spec["selector"], pod_labels(objs))
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and "metrics" in {p["name"] for p in worker(objs)["ports"]}
    assert endpoint.get("path", "/metrics") == "/metrics"
    # same scrape interval as the compose Prometheus the alert windows were written for
    assert endpoint["interval"] == yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    job = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert len(job) == 1 and job[0].get("action", "replace") == "replace" and not job[0].get("sourceLabels")
    assert job[0]["replacement"] == WORKER_JOB
    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        from localprom import WORKER_JOB as compose_job
    finally:
        sys.path.remove(str(ROOT / "deploy"))
    assert compose_job == WORKER_JOB
    rules = one(objs, "PrometheusRule")["spec"]["groups"]
    jobs = {j for g in rules for r in g["rules"] for j in re.findall(r'job="([^"]*)"', r["expr"])}
    assert jobs == {WORKER_JOB}, "the alerts would match no target"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_generate", K8S / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_prometheus_rule_is_generated_from_alerts_yml(objs: Objects) -> None:
    generate = load_generator()
    committed = (BASE / "prometheusrule.yaml").read_text()
    assert committed == generate.render(), (
        "deploy/k8s/base/prometheusrule.yaml drifted from deploy/prometheus/alerts.yml: "
        "run `python deploy/k8s/generate.py` and commit it")
    assert one(objs, "PrometheusRule")["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    # the comparison can fail: an edited alert gives another file
    edited = ALERTS.read_text().replace("for: 2m", "for: 3m", 1)
    assert edited != ALERTS.read_text() and generate.render(edited) != committed
    assert generate.main(["--check"]) == 0


# ---- network ----------------------------------------------------------------------------------------------------


def named_port(objs: Objects, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in worker(objs)["ports"] if p["name"] == port))


def test_network_policy_allows_only_prometheus_in_and_dns_and_kafka_out(objs: Objects) -> None:
    policy = one(objs, "NetworkPolicy")["spec"]
    assert selects(policy["podSelector"], pod_labels(objs))
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    metrics_port = int(setting(objs, "metrics_port"))

    (ingress,) = policy["ingress"]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert [(p.get("protocol", "TCP"), named_port(objs, p["port"])) for p in ingress["ports"]] == [
        ("TCP", metrics_port)]

    dns, kafka = [], []
    for rule in policy["egress"]:
        # a rule without `to` allows every destination, one without `ports` every port
        assert rule.get("to") and rule.get("ports"), rule
        for peer in rule["to"]:
            assert set(peer) <= {"namespaceSelector", "podSelector", "ipBlock"}
            if "ipBlock" in peer:
                assert ipaddress.ip_network(peer["ipBlock"]["cidr"]).prefixlen > 0, "0.0.0.0/0 is everything"
            else:
                assert peer.get("namespaceSelector", {}).get("matchLabels"), "select the namespace explicitly"
        ports = {(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]}
        assert all("endPort" not in p for p in rule["ports"])
        if ports == {("UDP", 53), ("TCP", 53)}:
            dns.append(rule)
        else:
            assert {proto for proto, _ in ports} == {"TCP"}, rule
            kafka.append(rule)
    assert len(dns) == 1, "DNS over UDP and TCP 53, in one rule"
    assert len(kafka) == 1
    kafka_ports = {int(p["port"]) for p in kafka[0]["ports"]}
    assert kafka_ports == bootstrap_ports(objs) == {9092}


def test_name_references_resolve_in_the_rendered_objects(tmp_path: Path) -> None:
    """The base has no Secret (documented placeholder); everything else refers to what is rendered, also under a
    namePrefix, which needs deploy/k8s/base/kustomizeconfig.yaml for KEDA's references."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": [os.path.relpath(EXAMPLE, tmp_path)], "namePrefix": "staging-"}))
    for path, allowed in ((BASE, {("Secret", "newsstream-kafka")}), (EXAMPLE, set()), (tmp_path, set())):
        objs = render(path)
        names = {(o["kind"], o["metadata"]["name"]) for o in objs}
        missing = {ref for ref in references(objs) if ref not in names}
        assert missing == allowed, f"{path}: unresolved references {missing}"


def references(objs: Objects) -> Iterator[tuple[str, str]]:
    for container in all_containers(objs):
        for source in container.get("envFrom", []):
            yield "ConfigMap", source["configMapRef"]["name"]
        for entry in container.get("env", []):
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if key in entry.get("valueFrom", {}):
                    yield kind, entry["valueFrom"][key]["name"]
    scaled = one(objs, "ScaledObject")["spec"]
    yield scaled["scaleTargetRef"]["kind"], scaled["scaleTargetRef"]["name"]
    for trigger in scaled["triggers"]:
        yield "TriggerAuthentication", trigger["authenticationRef"]["name"]
    for ref in one(objs, "TriggerAuthentication")["spec"]["secretTargetRef"]:
        yield "Secret", ref["name"]
