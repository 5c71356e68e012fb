"""The deployment files under ops/deploy/: they parse, agree with each other and with the code.

Docker is not needed: YAML is read by a small parser of the subset these files use
(:mod:`tests.support.yaml_subset`: it refuses anything else, so it cannot misread silently) and compared
with PyYAML where PyYAML is installed. That Redis starts with the shipped redis.conf and promtool accepts
the Prometheus files is checked with the real programs in ``tests/integration/test_deploy_files.py``.
"""

from __future__ import annotations

import configparser
import importlib
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from ops.cli.main import build_parser
from schemas.config import load_settings
from schemas.states import Status
from tests.support.paths import DEPLOY, ROOT
from tests.support.yaml_subset import load_yaml, parse_yaml
from worker.policy.classify import Verdict
from worker.service.metrics import Metrics

UNITS = ("callq-worker.service", "callq-worker@.service", "callq-serve.service")
# The metric names the alerts may use (what worker/service/metrics.py exports, as agreed for the alerts).
KNOWN_METRICS = frozenset(
    {
        "callq_jobs_finished_total",
        "callq_attempts_total",
        "callq_retries_total",
        "callq_rate_limit_waits_total",
        "callq_bitrix_request_seconds",
        "callq_queue_depth",
        "callq_scheduled_jobs",
        "callq_dead_letters",
        "callq_intake_lag_seconds",
        "callq_portal_paused",
        "callq_worker_up",
        "callq_config_mismatch",
        "callq_intake_entries_total",
        "callq_orphaned_attempts_total",
        "callq_results_dropped_total",
        "callq_running_attempts",
        "callq_redis_full",
        "callq_redis_writes_refused",
        "callq_portal_moved",
    }
)
# Local copies made from the examples: git-ignored, so a check of referenced files accepts them
# when their example exists.
LOCAL_COPIES = {"callq.env": "systemd/callq.env.example", "callq.toml": "callq.toml.example"}


def yaml_files() -> list[Path]:
    """Every YAML file of the deployment."""
    return sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml, parsed."""
    data = load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    """prometheus/prometheus.yml, parsed."""
    data = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    """Every rule of prometheus/alerts.yml."""
    data = load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    return [rule for group in data["groups"] for rule in group["rules"]]


# --- the YAML parser itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: 1\nb: '2'\nc: \"x: y\"\nd: no\ne: 2.5\nf:\n",
            {"a": 1, "b": "2", "c": "x: y", "d": False, "e": 2.5, "f": None},
        ),
        ('a:\n  - x\n  - k: v\n    l: ["p", "q"]\n', {"a": ["x", {"k": "v", "l": ["p", "q"]}]}),
        ("a: >-\n  one\n  two\n\n  three\nb: |\n  x\n    y\n", {"a": "one two\nthree", "b": "x\n  y\n"}),
        ("a: x # note\n# comment\nb: 'it''s #1'\n", {"a": "x", "b": "it's #1"}),
    ],
)
def test_subset_parser_reads_what_the_files_use(text: str, expected: Any) -> None:
    """The subset parser reads mappings, sequences, scalars, block scalars and JSON flow lists."""
    assert parse_yaml(text, "t") == expected


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\n",  # anchors
        "a: {b: 1}\n",  # flow mappings
        "ports:\n  - 22:22\n",  # YAML 1.1 reads this as a base-60 integer (1342)
        "mode: 0600\n",  # ... and this as octal
        "a: 1\na: 2\n",  # duplicate keys
        "a:\n\t- x\n",  # tabs
        "a: b: c\n",  # a plain scalar with ': '
        "a: 1\n---\nb: 2\n",  # several documents
        "a:\n    b: 1\n  c: 2\n",  # bad indentation
    ],
)
def test_subset_parser_refuses_what_it_does_not_understand(text: str) -> None:
    """Anything outside the subset is an error, never a silent misreading."""
    with pytest.raises(ValueError):
        parse_yaml(text, "t")


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_files_parse(path: Path) -> None:
    """Every YAML file under ops/deploy/ parses into a mapping."""
    assert isinstance(load_yaml(path), dict)


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_subset_parser_agrees_with_pyyaml(path: Path) -> None:
    """Where PyYAML is installed, it reads every file exactly as the subset parser does."""
    try:
        yaml: Any = importlib.import_module("yaml")
    except ModuleNotFoundError:
        pytest.skip("PyYAML is not installed (not a dependency); the subset parser's own tests still run")
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == load_yaml(path)


# --- systemd ---------------------------------------------------------------------------------


def read_unit(name: str) -> configparser.RawConfigParser:
    """A unit file; repeated keys are joined with newlines."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(_join_repeated((DEPLOY / "systemd" / name).read_text(encoding="utf-8")))
    return parser


def _join_repeated(text: str) -> str:
    """Rename repeated keys of a section (``K``, ``K#2``…) so configparser keeps them all."""
    seen: dict[str, int] = {}
    out = []
    for line in text.splitlines():
        if line.startswith("["):
            seen = {}
        elif "=" in line and not line.startswith(("#", ";")):
            key, rest = line.split("=", 1)
            seen[key] = seen.get(key, 0) + 1
            line = f"{key}#{seen[key]}={rest}" if seen[key] > 1 else line
        out.append(line)
    return "\n".join(out)


def seconds(value: str) -> float:
    """A systemd or compose duration ("45", "45s", "1min", "1m30s") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts and "".join(n + u for n, u in parts) == value.replace(" ", ""), value
    return sum(float(number) * units[unit] for number, unit in parts)


def drain_budget_s() -> float:
    """How long a graceful stop may take: the worker's default request timeout + 5 s (README)."""
    return float(build_parser().parse_args(["worker"]).request_timeout) + 5


@pytest.mark.parametrize("name", UNITS)
def test_units_stop_gracefully_and_restart_without_looping(name: str) -> None:
    """Each unit sends SIGTERM, waits longer than the drain, restarts always, and rate-limits starts."""
    unit = read_unit(name)
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["KillSignal"] == "SIGTERM"
    assert seconds(service["TimeoutStopSec"]) >= max(45, drain_budget_s() + 10)
    assert service["Restart"] == "always"
    assert seconds(service["RestartSec"]) >= 1
    burst, interval = int(unit["Unit"]["StartLimitBurst"]), seconds(unit["Unit"]["StartLimitIntervalSec"])
    # the limit must be reachable: `burst` starts, each at least RestartSec apart, fit in the interval
    assert burst * seconds(service["RestartSec"]) < interval


@pytest.mark.parametrize("name", UNITS)
def test_units_run_unprivileged_with_the_env_file(name: str) -> None:
    """Each unit runs the venv's callq as user callq, reads /etc/callq/callq.env, and is hardened."""
    service = read_unit(name)["Service"]
    assert service["ExecStart"].startswith("/opt/callq/.venv/bin/callq ")
    assert service["EnvironmentFile"] == "/etc/callq/callq.env"
    assert service["User"] == "callq" and service["Group"] == "callq"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key
    assert "MemoryDenyWriteExecute" not in service  # breaks libffi closures in Python


def callq_argv(exec_start: str) -> list[str]:
    """The callq arguments of an ExecStart line (``%i`` as the metrics port 9101)."""
    argv = exec_start.replace("%i", "9101").split()
    assert argv[0].endswith("/callq")
    return argv[1:]


def assert_callq_parses(argv: list[str]) -> None:
    """``callq ARGV`` is accepted by the real argument parser (skipped for commands not there yet)."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices or {}
    if argv[0] not in commands:
        pytest.skip(f"`callq {argv[0]}` is not implemented yet")
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"callq rejects {' '.join(argv)!r} (exit {exc.code})")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("callq-worker.service", ["worker", "--metrics-port", "9101"]),
        ("callq-worker@.service", ["worker", "--metrics-port", "%i"]),
        ("callq-serve.service", ["serve", "--host", "0.0.0.0", "--port", "8080"]),
    ],
)
def test_unit_commands(name: str, expected: list[str]) -> None:
    """The units run the expected callq commands, which callq's argument parser accepts."""
    assert read_unit(name)["Service"]["ExecStart"].split()[1:] == expected


@pytest.mark.parametrize("where", [*UNITS, "compose.yaml:worker", "compose.yaml:serve"])
def test_callq_commands_parse(where: str) -> None:
    """Every callq command line of the units and of compose.yaml is accepted by callq's own parser."""
    if where.startswith("compose.yaml:"):
        argv = load_yaml(DEPLOY / "compose.yaml")["services"][where.split(":")[1]]["command"]
    else:
        argv = callq_argv(read_unit(where)["Service"]["ExecStart"])
    assert_callq_parses(argv)


def readme_variables() -> set[str]:
    """The CALLQ_* variables of the configuration reference's table (`<NAME>` kept as written)."""
    names: set[str] = set()
    for line in (ROOT / "docs" / "reference" / "configuration.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `CALLQ_"):
            names.update(re.findall(r"`(CALLQ_[A-Z_<>]+)`", line.split("|")[1]))
    return names


def test_env_example_documents_every_variable() -> None:
    """callq.env.example names every variable of the configuration reference's table, each under a comment."""
    text = (DEPLOY / "systemd" / "callq.env.example").read_text(encoding="utf-8")
    expected = readme_variables() | {
        "CALLQ_REDIS_URL",
        "CALLQ_KEY_PREFIX",
        "CALLQ_CONFIG",
        "CALLQ_WEBHOOK_URL",
        "CALLQ_PORTAL_<NAME>_WEBHOOK_URL",
        "CALLQ_API_TOKENS",
    }
    missing = sorted(name for name in expected if name not in text)
    assert not missing, f"not in callq.env.example: {missing}"
    previous = ""
    for line in text.splitlines():
        assignment = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line)
        if assignment:
            assert assignment.group(1).startswith("CALLQ_"), line
            assert not assignment.group(2).startswith(("'", '"')), f"quotes differ in systemd/compose: {line}"
            assert previous.startswith("#"), f"undocumented: {line}"
        else:
            assert not line or line.startswith("#"), f"not VAR=value: {line!r}"
        previous = line


def test_config_example_loads() -> None:
    """callq.toml.example is accepted by callq's own configuration loader."""
    settings = load_settings(
        {"CALLQ_PORTAL_ACME_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/code/"},
        config_path=DEPLOY / "callq.toml.example",
    )
    assert settings.portals["acme"].rate == 2.0


# --- compose and the image -------------------------------------------------------------------


def bind_sources(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path, container path) of each bind mount of a compose service."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume["type"] == "bind":
                yield volume["source"], volume["target"]
        elif volume.startswith(("./", "../", "/")):
            source, target = volume.split(":")[:2]
            yield source, target


def assert_local_file(relative: str) -> None:
    """A file compose needs exists, or is a git-ignored local copy whose example exists."""
    path = (DEPLOY / relative).resolve()
    if path.exists():
        return
    name = path.relative_to(DEPLOY).as_posix()
    assert name in LOCAL_COPIES, f"compose refers to a missing file: {relative}"
    assert (DEPLOY / LOCAL_COPIES[name]).is_file()
    assert name in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def test_compose_refers_to_existing_files(compose: dict[str, Any]) -> None:
    """Build contexts, Dockerfiles, env files and bind-mounted files all exist (or have examples)."""
    assert set(compose["services"]) == {"redis", "worker", "serve", "prometheus"}
    for service in compose["services"].values():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).is_file()
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            assert_local_file(env_file)
        for source, _ in bind_sources(service):
            assert_local_file(source)
        if "build" not in service:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]) and not service["image"].endswith(
                ":latest"
            ), "pin third-party images"


def test_compose_values_are_strings_where_compose_wants_strings(compose: dict[str, Any]) -> None:
    """Commands and healthcheck tests are lists of strings (YAML 1.1 would turn `no` into false)."""
    for name, service in compose["services"].items():
        for items in (service.get("command", []), service.get("healthcheck", {}).get("test", [])):
            assert isinstance(items, list), name
            assert all(isinstance(item, str) for item in items), f"{name}: {items}"
        for value in service.get("environment", {}).values():
            assert isinstance(value, str), name


def option(argv: list[str], flag: str) -> str:
    """The value after ``flag`` in ``argv``."""
    return argv[argv.index(flag) + 1]


def scrape_port(prometheus: dict[str, Any], job: str) -> int:
    """The port the Prometheus job ``job`` scrapes (its DNS service discovery)."""
    config = next(c for c in prometheus["scrape_configs"] if c["job_name"] == job)
    port = config["dns_sd_configs"][0]["port"]
    assert isinstance(port, int)
    return port


def test_compose_worker(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    """Two workers, drained on SIGTERM within the grace period, healthy by their metrics port."""
    worker = compose["services"]["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["stop_signal"] == "SIGTERM" and worker["init"] is True
    assert seconds(worker["stop_grace_period"]) >= max(45, drain_budget_s() + 10)
    port = option(worker["command"], "--metrics-port")
    assert f"http://127.0.0.1:{port}/metrics" in worker["healthcheck"]["test"][-1]
    assert "callq_worker_up" in worker["healthcheck"]["test"][-1]
    assert scrape_port(prometheus, "callq-worker") == int(port)
    assert "ports" not in worker  # replicas cannot share a host port


def test_compose_serve(compose: dict[str, Any], prometheus: dict[str, Any]) -> None:
    """serve listens, is published, is health-checked and scraped on the same port."""
    serve = compose["services"]["serve"]
    port = option(serve["command"], "--port")
    assert option(serve["command"], "--host") == "0.0.0.0"
    assert [p.rsplit(":", 1)[1] for p in serve["ports"]] == [port]
    assert f"http://127.0.0.1:{port}/healthz" in serve["healthcheck"]["test"][-1]
    assert scrape_port(prometheus, "callq-serve") == int(port)
    assert serve["stop_signal"] == "SIGTERM" and seconds(serve["stop_grace_period"]) >= 45


def test_compose_callq_services_share_their_settings(compose: dict[str, Any]) -> None:
    """Worker and serve use the same Redis, config file and env file, pointing at the redis service."""
    worker, serve = compose["services"]["worker"], compose["services"]["serve"]
    assert worker["environment"] == serve["environment"]
    assert worker["environment"]["CALLQ_REDIS_URL"].startswith("redis://redis:6379/")
    config = worker["environment"]["CALLQ_CONFIG"]
    for service in (worker, serve):
        assert service["env_file"] == "callq.env"
        assert config in [target for _, target in bind_sources(service)]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_mounts_redis_and_prometheus_config(
    compose: dict[str, Any], prometheus: dict[str, Any]
) -> None:
    """Redis starts from the mounted redis.conf; Prometheus gets its config and every rule file."""
    redis = compose["services"]["redis"]
    mounts = dict(bind_sources(redis))
    assert redis["command"][:2] == ["redis-server", mounts["./redis/redis.conf"]]
    prom_mounts = {
        Path(source).name: target for source, target in bind_sources(compose["services"]["prometheus"])
    }
    config_target = prom_mounts["prometheus.yml"]
    assert f"--config.file={config_target}" in compose["services"]["prometheus"]["command"]
    for rule_file in prometheus["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).is_file()
        assert prom_mounts[rule_file] == str(Path(config_target).parent / rule_file)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerfile() -> None:
    """python:3.11-slim, the package sources copied, a non-root user, `callq` as the entrypoint."""
    steps = dockerfile_instructions()
    args = {name: value for i, a in steps if i == "ARG" for name, _, value in [a.partition("=")]}
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert [a.split()[0] for i, a in steps if i == "FROM"] == ["${PYTHON_IMAGE}"] * 2
    copied = {
        src.rstrip("/")
        for i, a in steps
        if i == "COPY" and not a.startswith("--from")
        for src in a.split()[:-1]
    }
    for source in copied:
        assert (ROOT / source).exists(), source
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    users = [a for i, a in steps if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["callq"]
    assert dict(steps)["STOPSIGNAL"] == "SIGTERM"


def test_secrets_stay_out_of_git_and_images() -> None:
    """The local env and config copies are git-ignored and kept out of the image's build context."""
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    docker_ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for name in LOCAL_COPIES:
        assert name in ignored
        assert f"**/{name}" in docker_ignored
    assert {".git", "**/.venv"} <= set(docker_ignored)


# --- Redis -----------------------------------------------------------------------------------


def redis_directives(name: str) -> dict[str, str]:
    """The directives of a Redis config file (the last one wins, as in Redis)."""
    directives = {}
    for line in (DEPLOY / "redis" / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            if key == "sentinel":  # `sentinel monitor callq ...`: one entry per subcommand
                sub, _, value = value.partition(" ")
                key = f"sentinel {sub}"
            directives[key.lower()] = value.strip()
    return directives


def test_redis_conf_is_durable_and_never_evicts() -> None:
    """redis.conf: AOF fsynced every second, noeviction, a memory limit, loopback and protected mode."""
    conf = redis_directives("redis.conf")
    assert conf["appendonly"] == "yes" and conf["appendfsync"] == "everysec"
    assert conf["maxmemory-policy"] == "noeviction"
    assert re.fullmatch(r"\d+(gb|mb)", conf["maxmemory"])
    assert conf["protected-mode"] == "yes" and conf["bind"].startswith("127.0.0.1")


def test_sentinel_conf_watches_callq_with_quorum_two() -> None:
    """sentinel.conf monitors the master named callq with a quorum of 2 (the URL's master name)."""
    name, _host, _port, quorum = redis_directives("sentinel.conf")["sentinel monitor"].split()
    assert (name, quorum) == ("callq", "2")
    assert "redis+sentinel://host1:26379,host2:26379,host3:26379/callq/0" in (
        DEPLOY / "systemd" / "callq.env.example"
    ).read_text(encoding="utf-8")


# --- Prometheus ------------------------------------------------------------------------------


def exported_metrics() -> dict[str, tuple[str, ...]]:
    """Sample name -> label names of everything worker/service/metrics.py exports."""
    exported: dict[str, tuple[str, ...]] = {}
    for metric in vars(Metrics()).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        family = next(iter(metric.describe()))
        suffixes = {"counter": ("_total",), "histogram": ("", "_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
        for suffix in suffixes:
            exported[family.name + suffix] = tuple(metric._labelnames)
    return exported


def test_known_metrics_are_exported() -> None:
    """Every metric name the alerts may use is exported by worker/service/metrics.py."""
    exported = exported_metrics()
    assert KNOWN_METRICS <= set(exported), sorted(KNOWN_METRICS - set(exported))


def test_alerts_are_complete(rules: list[dict[str, Any]]) -> None:
    """Every rule has a unique name, a severity, and summary, description and runbook annotations."""
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)) and len(names) >= 6
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/runbook.md#{rule['alert'].lower()}"
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]


def test_alerts_use_only_exported_metrics_and_labels(rules: list[dict[str, Any]]) -> None:
    """Every callq_* metric in an expression is known and exported, with labels and values it has."""
    exported = exported_metrics()
    values = {
        "status": {str(s) for s in Status},
        "result": {str(v) for v in Verdict} | {"success"},
        "reason": set(
            re.findall(r'reason="(\w+)"', (ROOT / "worker" / "service" / "metrics.py").read_text())
        ),
    }
    for rule in rules:
        expr = rule["expr"]
        for name in re.findall(r"\bcallq_\w+", expr):
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in KNOWN_METRICS else name
            assert family in KNOWN_METRICS and name in exported, f"{rule['alert']}: {name}"
        for name, matchers in re.findall(r"\b(callq_\w+)\{([^}]*)\}", expr):
            for label, value in re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', matchers):
                assert label in exported[name] + ("job", "instance"), f"{rule['alert']}: {name}{{{label}}}"
                assert value in values.get(label, {value}), f"{rule['alert']}: {label}={value!r}"


def test_alerts_cover_the_agreed_conditions(rules: list[dict[str, Any]]) -> None:
    """There are rules for dead letters, halted portals, intake lag, no worker, Redis full, unknown
    outcomes, expiries."""
    exprs = {rule["alert"]: rule["expr"] for rule in rules}
    assert 'status="dead"' in exprs["CallqDeadLettersRising"]
    assert "callq_portal_paused" in exprs["CallqPortalHalted"]
    assert re.search(r"callq_intake_lag_seconds\)? > 60\b", exprs["CallqIntakeLag"])
    assert "absent(callq_worker_up" in exprs["CallqNoWorker"]
    assert "callq_redis_full" in exprs["CallqRedisFull"]
    assert "callq_redis_writes_refused" in exprs["CallqRedisRefusesWrites"]
    assert 'result="unknown"' in exprs["CallqOutcomeUnknown"]
    assert 'status="expired"' in exprs["CallqJobsExpiring"]
    assert "callq_results_dropped_total" in exprs["CallqResultsDropped"]
    jobs = set(re.findall(r'job="([\w-]+)"', " ".join(exprs.values())))
    assert jobs <= {"callq-worker", "callq-serve"}


def markdown_anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file (outside code fences)."""
    anchors: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_runbook_links_resolve(rules: list[dict[str, Any]]) -> None:
    """Every docs page (and #anchor) the deployment files link to exists: the alerts' runbook links,
    docs/….md#… in comments, and the links of ops/deploy/README.md."""
    links = {
        (ROOT / page, anchor)
        for page, _, anchor in (r["annotations"]["runbook"].partition("#") for r in rules)
    }
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            links |= {
                (ROOT / page, anchor) for page, anchor in re.findall(r"\b(docs/[\w/.-]+\.md)#?([\w-]*)", text)
            }
            if path.suffix == ".md":
                for target, anchor in re.findall(r"\]\(([^)#\s]*)#?([\w-]*)\)", text):
                    links.add(((path.parent / target).resolve() if target else path, anchor))
    assert any(page.name == "runbook.md" for page, _ in links)
    broken = sorted(
        f"{page}#{anchor}"
        for page, anchor in links
        if not page.is_file() or (anchor and anchor not in markdown_anchors(page))
    )
    assert not broken, f"no such page or heading: {broken}"
