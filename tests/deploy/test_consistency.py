"""The manifests describe the system `datafrost dev` runs: the same functions, triggers, sinks and auth."""

from __future__ import annotations

import inspect
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

import shared.settings
from cli.manifests import rendered_files
from deploy import PATCHES, render
from deploy.common import NAMESPACE, SECRET
from deploy.config import cluster_settings
from functions.authz.main import CHECK_PREFIX
from functions.registry import all_specs
from functions.spec import relative_source
from functions.storage_events.rabbitmq_source import RABBITMQ_SOURCE_EVENT
from pipeline.events import OBJECT_CREATED, OBJECT_REMOVED, PING
from shared.settings import database_variable, from_env


def resources() -> list[dict[str, Any]]:
    return [r for rs in render(all_specs()).values() for r in rs]


def of_kind(kind: str, api_prefix: str = "") -> list[dict[str, Any]]:
    return [r for r in resources() if r["kind"] == kind and r["apiVersion"].startswith(api_prefix)]


def knative_services() -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in of_kind("Service", "serving.knative.dev")}


def test_one_service_per_function_and_one_trigger_per_registry_trigger() -> None:
    assert set(knative_services()) == {s.name for s in all_specs()}
    names = sorted(t["metadata"]["name"] for t in of_kind("Trigger"))
    assert names == sorted(s.trigger_name(t) for s in all_specs() for t in s.triggers)


def produced_types() -> set[str]:
    """What the functions emit, and what the generated sources send (a PingSource: its pings)."""
    pings = {PING} if of_kind("PingSource") else set()
    return {t for s in all_specs() for t in s.emits} | pings


def test_triggers_reach_generated_services_with_exact_filters_only() -> None:
    services = knative_services()
    produced = produced_types()
    assert {OBJECT_CREATED, OBJECT_REMOVED} <= produced
    for t in of_kind("Trigger"):
        spec = t["spec"]
        assert spec["subscriber"]["ref"]["name"] in services
        assert "filters" not in spec and set(spec["filter"]) == {"attributes"}
        assert all(isinstance(v, str) and v for v in spec["filter"]["attributes"].values())
        assert spec["filter"]["attributes"]["type"] in produced  # every consumed type has a producer
        sink = spec["delivery"].get("deadLetterSink")
        assert sink is None or sink["ref"]["name"] in services


def test_every_consumed_type_has_a_producer() -> None:
    produced = produced_types()
    for spec in all_specs():
        assert set(spec.consumes) - {"*"} <= produced, spec.name


def test_scaling_annotations_equal_the_registry() -> None:
    services = knative_services()
    for spec in all_specs():
        template = services[spec.name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["autoscaling.knative.dev/min-scale"] == str(spec.scaling.min_scale)
        assert annotations["autoscaling.knative.dev/max-scale"] == str(spec.scaling.max_scale)
        assert annotations["autoscaling.knative.dev/target"] == str(spec.scaling.target_concurrency)
        assert template["spec"]["containerConcurrency"] == spec.scaling.container_concurrency
        assert template["spec"]["timeoutSeconds"] == spec.scaling.timeout_seconds
        env = {e["name"]: e.get("value") or e["valueFrom"] for e in template["spec"]["containers"][0]["env"]}
        assert Path(env["FUNCTION_SOURCE"]) == spec.source.relative_to(spec.source.parents[2])


def test_a_function_with_a_database_requires_its_url_from_the_secret() -> None:
    services = knative_services()
    for spec in all_specs():
        env = services[spec.name]["spec"]["template"]["spec"]["containers"][0]["env"]
        from_secret = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
        variable = database_variable(spec.name)
        expected = {variable: {"name": SECRET, "key": variable}} if spec.database else {}
        assert from_secret == expected, spec.name
    assert {s.name for s in all_specs() if s.database} == {"catalog", "dead-letters"}


def test_the_sink_binding_covers_exactly_the_functions_that_post_events() -> None:
    """K_SINK on Knative (SinkBinding) for the same functions the local runner gives it to."""
    (binding,) = of_kind("SinkBinding")
    selector = binding["spec"]["subject"]["selector"]["matchLabels"]
    bound = {
        name for name, s in knative_services().items() if selector.items() <= s["metadata"]["labels"].items()
    }
    assert bound == {s.name for s in all_specs() if s.uses_sink}
    assert binding["spec"]["sink"]["ref"]["kind"] == "Broker"
    (broker,) = of_kind("Broker")
    assert binding["spec"]["sink"]["ref"]["name"] == broker["metadata"]["name"]


def test_uses_sink_matches_what_each_function_reads() -> None:
    """A function that reads K_SINK (`settings.sink`) must declare it, or on Knative it gets none."""
    for spec in all_specs():
        code = "\n".join(p.read_text() for p in spec.source.parent.glob("*.py"))
        assert bool(re.search(r"(settings|config)\.sink\b", code)) == spec.uses_sink, spec.name


def test_the_rabbitmq_source_feeds_storage_events_from_minios_exchange() -> None:
    (exchange,) = of_kind("Exchange", "rabbitmq.com")
    (queue,) = of_kind("Queue", "rabbitmq.com")
    (binding,) = of_kind("Binding", "rabbitmq.com")
    (source,) = of_kind("RabbitmqSource")
    local = from_env({})  # what `datafrost dev` reads MinIO's AMQP target with
    assert exchange["spec"]["name"] == binding["spec"]["source"] == local.storage_amqp_exchange
    assert binding["spec"]["routingKey"] == local.storage_amqp_routing_key
    assert binding["spec"]["destination"] == queue["spec"]["name"]
    assert source["spec"]["rabbitmqResourcesConfig"]["queueName"] == queue["spec"]["name"]
    assert source["spec"]["rabbitmqResourcesConfig"]["predeclared"] is True
    assert source["spec"]["sink"]["ref"]["name"] == "storage-events"
    assert source["spec"]["sink"]["uri"] == "/rabbitmq"  # served: tests/functions/storage_events
    assert RABBITMQ_SOURCE_EVENT == "dev.knative.rabbitmq.event"
    clusters = {r["spec"]["rabbitmqClusterReference"]["name"] for r in (exchange, queue, binding, source)}
    (config,) = of_kind("RabbitmqBrokerConfig")
    assert clusters == {config["spec"]["rabbitmqClusterReference"]["name"]}


def test_kourier_checks_every_request_with_authz() -> None:
    services = knative_services()
    (extauthz,) = [r for r in of_kind("Service", "v1") if r["apiVersion"] == "v1"]
    patch = next(r for r in of_kind("ConfigMap") if r["metadata"]["name"] == "config-kourier")
    assert extauthz["spec"]["selector"] == {"serving.knative.dev/service": "authz"}
    authz = services["authz"]["spec"]["template"]["metadata"]["annotations"]
    assert int(authz["autoscaling.knative.dev/min-scale"]) >= 1  # never cold: it is in every request's path
    name, port = extauthz["metadata"]["name"], extauthz["spec"]["ports"][0]["port"]
    data = patch["data"]
    assert data["extauthz-host"] == f"{name}.{NAMESPACE}.svc.cluster.local:{port}"
    assert (data["extauthz-protocol"], data["extauthz-path-prefix"]) == ("http", CHECK_PREFIX)
    assert data["extauthz-failure-mode-allow"] == "false"  # fail closed


def test_every_config_key_is_a_setting_the_functions_read() -> None:
    config = next(r for r in of_kind("ConfigMap") if r["metadata"]["name"] == "datafrost-config")
    read = set(re.findall(r'"(DATAFROST_[A-Z_]+)"', inspect.getsource(shared.settings)))
    assert set(config["data"]) <= read
    assert "DATAFROST_AUTH_CLUSTER_LOCAL_SUFFIXES" in config["data"]
    assert from_env(config["data"]).auth_dev_issuer is False


def test_the_kustomization_applies_everything_but_knatives_own_configmaps() -> None:
    files = rendered_files()
    kustomization = yaml.safe_load(files["kustomization.yaml"])
    not_applied = {"kustomization.yaml", "kn.sh", "monitoring/datafrost-dashboard.json", *PATCHES}
    assert set(kustomization["resources"]) == set(files) - not_applied
    for name, rs in render(all_specs()).items():
        for r in rs:
            if name in PATCHES:
                assert r["metadata"]["namespace"] == "knative-serving"
            elif r["kind"] != "Namespace":
                assert r["metadata"]["namespace"] == NAMESPACE, (name, r["metadata"]["name"])


def test_the_kn_script_creates_the_same_services_and_triggers() -> None:
    script = rendered_files()["kn.sh"]
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    lines = {
        " ".join(shlex.split(line)[:4]): shlex.split(line)
        for line in script.splitlines()
        if line.startswith("kn ")
    }
    for spec in all_specs():
        words = lines[f"kn service create {spec.name}"]
        flags = {words[i]: words[i + 1] for i in range(4, len(words) - 1) if words[i].startswith("--")}
        assert flags["--scale-min"] == str(spec.scaling.min_scale)
        assert flags["--scale-max"] == str(spec.scaling.max_scale)
        assert f"FUNCTION_SOURCE={relative_source(spec.name)}" in words
        assert ("datafrost.dev/sink=broker" in words) == spec.uses_sink
        for t in spec.triggers:
            trigger = lines[f"kn trigger create {spec.trigger_name(t)}"]
            assert trigger[trigger.index("--sink") + 1] == f"ksvc:{spec.name}"
            assert all(f"{k}={v}" in trigger for k, v in t.resolved_filter(cluster_settings()).items())
            assert f"patch trigger {spec.trigger_name(t)} " in script
