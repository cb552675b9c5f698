"""Deployment files against the code: compose structure, promtool checks, and every dashboard and alert
expression run on a real Prometheus scraping a real worker.

No Docker engine here: docker-compose.yml is checked for what can be checked without one — pinned images,
topology, and that every command and ``NEWSSTREAM_*`` name it uses exists in the code.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from newsstream.cli import build_parser
from streamer.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "deploy"))

from localprom import WORKER_JOB, LocalPrometheus  # noqa: E402

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROM_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "newsstream.json"
ENV_NAME = re.compile(r"\bNEWSSTREAM_[A-Z0-9_]+\b")
TOPICS = ("articles", "articles.enriched", "articles.dlq")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def newsstream_services() -> dict[str, dict[str, Any]]:
    """Services running our image (built from this Dockerfile)."""
    return {name: svc for name, svc in compose()["services"].items()
            if "build" in svc or str(svc.get("image", "")).startswith("newsstream:")}


def dockerfile_json(instruction: str) -> list[str]:
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith(instruction + " ")]
    assert lines, f"Dockerfile has no {instruction}"
    return list(json.loads(lines[-1][len(instruction) + 1:]))


def parse_command(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    # build_parser configures only the sub-command named in sys.argv[1] (start-up cost), so set it as the CLI would.
    monkeypatch.setattr(sys, "argv", ["newsstream", *argv])
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"`newsstream {shlex.join(argv)}` does not parse (exit {exc.code})") from exc


# ---- compose and Dockerfile structure ----------------------------------------------------------------------


def test_every_image_is_pinned() -> None:
    services = compose()["services"]
    assert services
    for name, svc in services.items():
        image = svc.get("image")
        assert image, f"service {name} has no image (a build needs a tag too, so the replicas share it)"
        repo, _, tag = str(image).rpartition(":")
        assert repo and tag and "/" not in tag, f"service {name}: image {image!r} has no tag"
        assert tag != "latest", f"service {name}: image {image!r} is not pinned"
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("FROM "):
            base = line.split()[1]
            assert ":" in base and not base.endswith(":latest"), f"Dockerfile base {base} is not pinned"


def test_topology_two_workers_six_partitions_one_group() -> None:
    c = compose()
    services = c["services"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    env = worker["environment"]
    assert env["NEWSSTREAM_GROUP_ID"]  # one group for both replicas: set once, not per replica
    assert (env["NEWSSTREAM_INPUT_TOPIC"], env["NEWSSTREAM_OUTPUT_TOPIC"], env["NEWSSTREAM_DLQ_TOPIC"]) == TOPICS
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"

    script = "\n".join(services["topics"]["command"])
    assert re.search(r"--partitions 6\b", script), script
    assert "--create" in script and "--if-not-exists" in script
    created = re.search(r"for t in ([^;]+);", script)
    assert created is not None and tuple(created.group(1).split()) == TOPICS
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert any(str(v).startswith("kafka-data:") for v in services["kafka"]["volumes"])

    assert services["replay"]["profiles"] == ["replay"]
    # Prometheus scrapes every replica on the port the worker listens on; Grafana gets datasource + dashboard.
    scrape = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    job = next(j for j in scrape["scrape_configs"] if j["job_name"] == WORKER_JOB)
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert str(job["dns_sd_configs"][0]["port"]) == env["NEWSSTREAM_METRICS_PORT"]
    assert env["NEWSSTREAM_METRICS_HOST"] == "0.0.0.0"
    assert f"EXPOSE {env['NEWSSTREAM_METRICS_PORT']}" in DOCKERFILE.read_text()
    for svc_name in ("prometheus", "grafana"):
        for volume in services[svc_name]["volumes"]:
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{svc_name} mounts {source}, which does not exist"
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/newsstream.yml").read_text())
    assert mounts[provider["providers"][0]["options"]["path"]] == "./deploy/grafana/dashboards"
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p} == {uid}


def test_every_env_name_is_a_setting() -> None:
    fields = {"NEWSSTREAM_" + name.upper() for name in Settings.model_fields}
    used = set(ENV_NAME.findall(COMPOSE.read_text())) | set(ENV_NAME.findall(DOCKERFILE.read_text()))
    assert {"NEWSSTREAM_BOOTSTRAP_SERVERS", "NEWSSTREAM_MODEL_PATH", "NEWSSTREAM_METRICS_PORT"} <= used
    assert used - fields == set(), f"not settings: {sorted(used - fields)}"


def test_compose_environments_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, svc in newsstream_services().items():
        for key in [k for k in os.environ if k.startswith("NEWSSTREAM_")]:
            monkeypatch.delenv(key)
        for key, value in (svc.get("environment") or {}).items():
            monkeypatch.setenv(key, str(value))
        settings = Settings()  # raises on a bad value (e.g. an unknown processing guarantee)
        assert settings.bootstrap_servers == "kafka:9092", name


def test_every_command_parses_with_the_real_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    entrypoint = dockerfile_json("ENTRYPOINT")
    assert entrypoint == ["newsstream"]
    default = parse_command(dockerfile_json("CMD"), monkeypatch)
    assert default.command == "worker"
    services = newsstream_services()
    assert set(services) == {"worker", "replay"}
    parsed = {name: parse_command(list(svc["command"]), monkeypatch) for name, svc in services.items()}
    assert parsed["worker"].command == "worker"
    replay = parsed["replay"]
    assert replay.command == "produce" and replay.topic == "articles"
    # The replayed file is inside the image: Dockerfile copies examples/ to /app/examples.
    assert "COPY --chown=newsstream:newsstream examples /app/examples" in DOCKERFILE.read_text()
    assert str(replay.file).startswith("/app/examples/")
    assert (ROOT / "examples" / Path(replay.file).name).is_file()
    # produce takes its broker from NEWSSTREAM_BOOTSTRAP_SERVERS when --bootstrap-servers is absent
    assert replay.bootstrap_servers is None
    assert services["replay"]["environment"]["NEWSSTREAM_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_dockerfile_is_non_root_with_model_and_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    model_env = re.search(r"NEWSSTREAM_MODEL_PATH=(\S+)", text)
    assert model_env is not None
    assert re.search(rf"^COPY .*\bmodels {re.escape(model_env.group(1))}$", text, re.M)


def test_dockerfile_pins_the_scikit_learn_minor_of_the_bundled_model() -> None:
    """Bundles are refused under another scikit-learn minor: the image build reads it from the cards."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    m = re.search(r'SKLEARN=\$\(python -c "([^"]+)"\)', text)
    assert m is not None and '"scikit-learn==${SKLEARN}.*"' in text
    cards = sorted((ROOT / "models").glob("*/card.json"))
    if not cards:
        pytest.skip("no bundle under models/")
    out = subprocess.run([sys.executable, "-c", m.group(1)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    built_with = max((json.loads(c.read_text())["libraries"]["scikit-learn"] for c in cards),
                     key=lambda v: tuple(int(x) for x in v.split(".")))
    assert out.stdout.strip() == ".".join(built_with.split(".")[:2])


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (v1) not installed")
def test_docker_compose_config(tmp_path: Path) -> None:
    """Debian's docker-compose 1.29 validates against its compose-spec schema and resolves the file. It predates
    the top-level ``name`` (Compose v2), so that one line is dropped; everything else is checked as written."""
    lines = COMPOSE.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("name:")]
    assert len(lines) - len(kept) == 1
    copy = tmp_path / "docker-compose.yml"
    copy.write_text("".join(kept))
    result = subprocess.run(["docker-compose", "-f", str(copy), "--project-directory", str(ROOT),
                             "--project-name", "newsstream", "config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(compose()["services"])
    assert resolved["services"]["worker"]["deploy"]["replicas"] == 2


# ---- promtool ----------------------------------------------------------------------------------------------


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not installed (make test installs it with apt when run as root)")
    return subprocess.run([binary, *args], input=stdin, capture_output=True, timeout=60)


def test_promtool_check_config_and_rules() -> None:
    config = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert b"1 rule files found" in config.stdout
    rules = promtool("check", "rules", str(PROM_DIR / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert b"SUCCESS: 10 rules found" in rules.stdout


def test_promtool_rule_unit_tests() -> None:
    result = promtool("test", "rules", str(PROM_DIR / "alerts.test.yml"))
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    alerts = {r["alert"] for g in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    tested = set(re.findall(r"alertname: (\w+)", (PROM_DIR / "alerts.test.yml").read_text()))
    assert alerts == tested, f"alerts without a unit test: {sorted(alerts - tested)}"


# ---- PromQL helpers ----------------------------------------------------------------------------------------

RATE_INTERVAL = "30s"
_TOP_LEVEL_OP = re.compile(r"\s(?:and|or|unless)\s|==|!=|>=|<=|>|<")
_MODIFIER = re.compile(r"^(?:bool|on\s*\([^)]*\)|ignoring\s*\([^)]*\)|group_(?:left|right)(?:\s*\([^)]*\))?)\s*")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?$", re.I)


def _split_top_level(expr: str) -> list[str]:
    parts, depth, start, i, quote = [], 0, 0, 0, ""
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (m := _TOP_LEVEL_OP.match(expr, i)):
            parts.append(expr[start:i])
            start = i = m.end()
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _wrapped(expr: str) -> bool:
    if not (expr.startswith("(") and expr.endswith(")")):
        return False
    depth = 0
    for i, c in enumerate(expr):
        depth += c == "("
        depth -= c == ")"
        if depth == 0 and i < len(expr) - 1:
            return False
    return True


def operands(expr: str) -> list[str]:
    """The vector operands of an alert expression's comparisons and set operators (thresholds dropped)."""
    out = []
    for part in _split_top_level(expr):
        part = part.strip()
        while m := _MODIFIER.match(part):
            part = part[m.end():]
        if not part or _NUMBER.match(part):
            continue
        if _wrapped(part):
            out.extend(operands(part[1:-1]))
        elif len(_split_top_level(part)) > 1:
            out.extend(operands(part))
        else:
            out.append(part)
    return out


def test_operands_of_alert_expressions() -> None:
    assert operands('up{job="a"} == 0') == ['up{job="a"}']
    assert operands("(time() - x{a=\"b>c\"} > 300)\nand on (job, instance)\n(sum by (job) (delta(y[5m])) > 0)") == [
        'time() - x{a="b>c"}', "sum by (job) (delta(y[5m]))"]
    assert operands("sum(rate(a[5m])) / sum(rate(b[5m])) > 0.05") == ["sum(rate(a[5m])) / sum(rate(b[5m]))"]


def dashboard_expressions() -> list[tuple[str, str]]:
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return out


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def grafana_to_promql(expr: str) -> str:
    assert set(re.findall(r"\$\w+", expr)) <= {"$__rate_interval"}, f"unknown Grafana variable in {expr}"
    return expr.replace("$__rate_interval", RATE_INTERVAL)


def finite_values(answer: dict[str, Any]) -> list[float]:
    data = answer["data"]
    rows = data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]
    return [float(r["value"][1]) for r in rows if math.isfinite(float(r["value"][1]))]


# ---- real Prometheus, real worker ----------------------------------------------------------------------------

POISON = [
    b'{"id": "poison-json", "text": ',
    json.dumps({"id": "poison-empty", "text": "  "}).encode(),
    json.dumps({"id": "poison-schema", "title": "no text"}).encode(),
    b'{"id": "poison-utf8", "text": "caf\xe9"}',
]


@pytest.fixture
def live(broker: Any, topics_factory: Any, worker_factory: Any, model_v1: Path,
         tmp_path: Path) -> Any:
    """A worker fed continuously by `newsstream produce` (examples + 4 poison lines), scraped every second."""
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (make test installs it with apt when run as root)")
    t = topics_factory(partitions=6)
    # With a shadow (the same bundle) so the shadow series have data; the drift window fills within the first
    # seconds of traffic (NEWSSTREAM_DRIFT_MIN_PREDICTIONS lowered to 50).
    worker = worker_factory(t, model_v1, batch_max_wait_ms=100, drift_min_predictions=50,
                            shadow_model_path=model_v1 / "test-model-1")
    worker.wait_ready(timeout_s=60)

    examples = [line for line in (ROOT / "examples" / "articles.jsonl").read_bytes().splitlines() if line.strip()]
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(examples + POISON) + b"\n")
    produce_log = (tmp_path / "produce.log").open("wb")
    producer = subprocess.Popen(
        [sys.executable, "-m", "newsstream", "produce", "--file", str(feed), "--topic", t.input,
         "--bootstrap-servers", broker.bootstrap, "--rate", "40", "--repeat", "1000"],
        cwd=ROOT, stdout=produce_log, stderr=subprocess.STDOUT)
    (tmp_path / "prometheus").mkdir()
    prom = LocalPrometheus(tmp_path / "prometheus", [f"127.0.0.1:{worker.metrics_port}"])
    try:
        prom.start()
        # Enough history that every [30s] window holds traffic, dead letters included.
        deadline = time.monotonic() + 90
        while True:
            counts = [finite_values(prom.query(f'min(count_over_time({name}{{job="{WORKER_JOB}"}}[{RATE_INTERVAL}]))'))
                      for name in ("newsstream_messages_dead_lettered_total",
                                   "newsstream_message_processing_seconds_count")]
            if all(c and c[0] >= 20 for c in counts):
                break
            assert producer.poll() is None, f"produce exited: {(tmp_path / 'produce.log').read_text()}"
            assert time.monotonic() < deadline, (
                f"no samples in Prometheus:\n{prom.log()[-3000:]}\n{worker.log()[-3000:]}")
            time.sleep(1)
        yield prom, worker
    finally:
        producer.terminate()
        producer.wait(timeout=10)
        produce_log.close()
        prom.stop()


def test_dashboard_and_alerts_on_a_real_prometheus(live: Any) -> None:
    """Every dashboard and alert expression answers on real data; then `promtool check metrics` on /metrics."""
    prom, worker = live
    problems = []

    dashboard = dashboard_expressions()
    assert len(dashboard) >= 25
    for where, expr in dashboard:
        answer = prom.query(grafana_to_promql(expr))
        if answer.get("status") != "success":
            problems.append(f"dashboard {where}: {answer.get('error')}: {expr}")
        elif not finite_values(answer):
            problems.append(f"dashboard {where}: no data: {expr} → {answer['data']['result']}")

    rules = alert_rules()
    for rule in rules:
        answer = prom.query(rule["expr"])
        if answer.get("status") != "success":
            problems.append(f"alert {rule['alert']}: {answer.get('error')}")
        inner = operands(rule["expr"])
        assert inner, rule["expr"]
        for expr in inner:
            answer = prom.query(expr)
            if answer.get("status") != "success" or not finite_values(answer):
                problems.append(f"alert {rule['alert']} operand: no data: {expr} → {answer}")
    assert not problems, "\n".join(problems)

    # Prometheus evaluated every rule itself (1 s interval) without error...
    evaluated = {r["name"]: r for g in prom.api("rules")["data"]["groups"] for r in g["rules"]}
    assert set(evaluated) == {r["alert"] for r in rules}
    assert {name: r["health"] for name, r in evaluated.items()} == dict.fromkeys(evaluated, "ok")
    # ...and on this run only the dead-letter alert is on its way: 4 poison lines in 36 is 11% > 5%.
    active = {a["labels"]["alertname"]: a["state"] for a in prom.api("alerts")["data"]["alerts"]}
    assert active.get("NewsstreamDeadLetterRateHigh") == "pending", active
    for quiet in ("NewsstreamWorkerDown", "NewsstreamNoProgress", "NewsstreamModelReloadRefused", "NewsstreamNotReady",
                  "NewsstreamConsumingWithoutCommitting", "NewsstreamDeadLetterTopicRefusing",
                  "NewsstreamShadowFailing"):
        assert quiet not in active, active

    # The exposition the dashboards are built on passes promtool's lint.
    status, body = worker.get("/metrics")
    assert status == 200 and b"newsstream_messages_dead_lettered_total{" in body
    result = promtool("check", "metrics", stdin=body)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr).decode()
