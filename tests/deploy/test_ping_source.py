"""The PingSource drives the catalog's reconciler on Knative as `datafrost dev`'s pings do locally."""

from __future__ import annotations

import json

from deploy import render
from deploy.common import BROKER, NAMESPACE
from functions.registry import all_specs
from localplatform.upkeep import PING_SOURCE, ping_event
from pipeline.events import PING, RECONCILE_PING_DATA, ping_source


def test_the_ping_source_reaches_the_catalog_through_the_broker_as_dev_pings_do() -> None:
    resources = render(all_specs())
    (ping,) = resources["ping-source.yaml"]
    assert ping["kind"] == "PingSource" and ping["spec"]["schedule"] == "*/5 * * * *"
    sink = ping["spec"]["sink"]["ref"]
    assert (sink["kind"], sink["name"], sink["namespace"]) == ("Broker", BROKER, NAMESPACE)
    assert json.loads(ping["spec"]["data"]) == RECONCILE_PING_DATA == ping_event(1).json()
    # what Knative sends as (knative.dev/eventing PingSourceSource) is what dev sends as
    assert ping_source(NAMESPACE, ping["metadata"]["name"]) == PING_SOURCE
    takers = [t for t in resources["triggers.yaml"] if t["spec"]["filter"]["attributes"]["type"] == PING]
    assert [t["spec"]["subscriber"]["ref"]["name"] for t in takers] == ["catalog"]
    assert ping_event(1).type == PING
