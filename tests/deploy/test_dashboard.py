"""The Grafana dashboard: a valid JSON model whose queries use only metrics the code exports."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import REGISTRY

from cli.manifests import rendered_files
from deploy.dashboard import PANELS
from shared import metrics

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "le"}


def exported() -> set[str]:
    """Every sample name the code's metrics produce: registered families and scrape-time gauges."""
    import functions.runtime  # noqa: F401
    import localplatform.runner  # noqa: F401  (the modules that define metrics, so all are registered)

    names = set(metrics.SCRAPE_TIME_GAUGES)
    for collector in list(REGISTRY._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def queried(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", re.sub(r"\[[^\]]*\]", "", expr))
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_labels)) - PROMQL_WORDS
    return {w for w in words if not re.fullmatch(r"[a-z]+", w) or w.startswith("datafrost")}


def dashboard() -> dict:
    files = rendered_files()
    model = json.loads(files["monitoring/datafrost-dashboard.json"])
    config_map = yaml.safe_load(files["monitoring/grafana-dashboard.yaml"].split("\n", 1)[1])
    assert json.loads(config_map["data"]["datafrost.json"]) == model
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    return model


def test_every_query_uses_metrics_the_code_exports() -> None:
    names = exported()
    assert "datafrost_broker_events_received_total" in names and "datafrost_catalog_images" in names
    checked = 0
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            if panel["datasource"]["type"] != "prometheus":
                continue
            used = queried(target["expr"])
            assert used and used <= names, (panel["title"], used - names)
            checked += len(used)
    assert checked >= len([p for p in PANELS if p.kind != "logs"])


def test_a_metric_the_code_does_not_export_is_caught() -> None:
    assert not queried("sum(rate(datafrost_made_up_total[5m]))") <= exported()
    assert not queried("rate(datafrost_broker_events_received_bucket[5m])") <= exported()  # a counter


def test_the_json_model_imports_in_grafana() -> None:
    model = dashboard()
    assert model["uid"] and model["title"] and isinstance(model["schemaVersion"], int)
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert {v["type"] for v in variables.values()} == {"datasource"}
    plugins = {name: v["query"] for name, v in variables.items()}
    for panel in model["panels"]:
        assert {"id", "type", "title", "gridPos", "targets", "datasource"} <= set(panel)
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        uid = panel["datasource"]["uid"]
        assert uid.startswith("${") and plugins[uid[2:-1]] == panel["datasource"]["type"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"] for t in panel["targets"])
    kinds = {panel["type"] for panel in model["panels"]}
    assert kinds <= {"timeseries", "bargauge", "logs"} and "logs" in kinds
    titles = " ".join(panel["title"].lower() for panel in model["panels"])
    for wanted in (
        "throughput",
        "latency",
        "dead letters",
        "processing time",
        "images by status",
        "cold starts",
        "error logs",
    ):
        assert wanted in titles, wanted


def test_every_function_service_is_scraped() -> None:
    services = yaml.safe_load_all(rendered_files()["services.yaml"].split("\n", 1)[1])
    for service in services:
        annotations = service["spec"]["template"]["metadata"]["annotations"]
        port = service["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
            str(port),
            "/metrics",
        )
