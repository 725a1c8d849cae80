"""`knative/kn.sh`, the deploy guide and the release job: kn arguments as kn reads them, and Kourier's
ext-authz switched on in an order that works (issue 13 items 2 and 3)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from cli.manifests import rendered_files
from deploy.kourier import MIN_NET_KOURIER

ROOT = Path(__file__).resolve().parents[2]

# kn's short names for --broker-config kinds (knative/client pkg/commands/broker: ConfigTypeMapping)
KN_DEFAULT_KINDS = {
    "cm": ("ConfigMap", "v1"),
    "configmap": ("ConfigMap", "v1"),
    "sc": ("Secret", "v1"),
    "secret": ("Secret", "v1"),
    "rmq": ("RabbitmqCluster", "rabbitmq.com/v1beta1"),
    "rabbitmq": ("RabbitmqCluster", "rabbitmq.com/v1beta1"),
    "rabbitmqcluster": ("RabbitmqCluster", "rabbitmq.com/v1beta1"),
}


def kn_broker_config_reference(value: str) -> dict[str, str]:
    """What `kn broker create --broker-config VALUE` puts in the Broker's spec.config.

    Encodes knative/client's `ConfigFlags.GetBrokerConfigReference` (package pkg/commands/broker, the
    --broker-config flag's parser):
    `strings.SplitN(value, ":", 4)`; 1 part: a ConfigMap's name; 2: `<kind>:<name>` for a kind kn
    knows; 3: `<kind>:<name>:<namespace>` for a kind kn knows, else `<apiVersion>:<kind>:<name>`;
    4: `<apiVersion>:<kind>:<name>:<namespace>`.
    """
    parts = value.split(":", 3)
    if len(parts) == 1:
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": parts[0]}
    known = KN_DEFAULT_KINDS.get(parts[0].lower())
    if len(parts) == 2:
        assert known is not None, f"kn: APIVersion could not be determined for kind {parts[0]!r}"
        return {"apiVersion": known[1], "kind": known[0], "name": parts[1]}
    if len(parts) == 3:
        if known is not None:
            return {"apiVersion": known[1], "kind": known[0], "name": parts[1], "namespace": parts[2]}
        return {"apiVersion": parts[0], "kind": parts[1], "name": parts[2]}
    return {"apiVersion": parts[0], "kind": parts[1], "name": parts[2], "namespace": parts[3]}


def test_kn_reads_the_documented_broker_config_forms() -> None:
    """The parser above against the examples in kn's own `broker create --help`."""
    assert kn_broker_config_reference("spec-cm") == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "spec-cm",
    }
    assert kn_broker_config_reference("sc:spec-sc:test")["namespace"] == "test"
    assert kn_broker_config_reference("rabbitmq.com/v1beta1:RabbitmqCluster:mycluster:test") == {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "RabbitmqCluster",
        "name": "mycluster",
        "namespace": "test",
    }


def test_kn_sh_creates_the_broker_with_the_kustomizations_config_reference() -> None:
    files = rendered_files()
    broker = next(r for r in yaml.safe_load_all(files["broker.yaml"]) if r and r["kind"] == "Broker")
    config = next(
        r for r in yaml.safe_load_all(files["broker.yaml"]) if r and r["kind"] == "RabbitmqBrokerConfig"
    )
    line = next(line for line in files["kn.sh"].splitlines() if line.startswith("kn broker create"))
    words = shlex.split(line)
    parsed = kn_broker_config_reference(words[words.index("--broker-config") + 1])
    assert parsed == {
        "apiVersion": config["apiVersion"],
        "kind": config["kind"],
        "name": config["metadata"]["name"],
        "namespace": config["metadata"].get("namespace", parsed.get("namespace")),
    }
    assert {k: parsed[k] for k in ("apiVersion", "kind", "name")} == broker["spec"]["config"]
    assert (
        words[words.index("--class") + 1]
        == broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"]
    )


def authz_steps_in(text: str) -> list[str]:
    """The lines of `text` that are authz-in-front-of-Kourier steps (patch file path normalised)."""
    wanted = ("wait ksvc/authz", "patch configmap config-kourier", "rollout restart deployment/net-kourier",
              "rollout status deployment/net-kourier")  # fmt: skip
    steps = []
    for line in text.splitlines():
        for i, part in enumerate(wanted):
            if part in line:
                steps.append(i)
    return [wanted[i] for i in steps]


@pytest.mark.parametrize("where", ["knative/kn.sh", "README.md", ".github/workflows/ci.yaml"])
def test_kourier_gets_authz_in_order_and_its_controller_is_restarted(where: str) -> None:
    """authz Ready, then the config-kourier patch, then a restart of net-kourier's controller and a wait.

    net-kourier (knative-extensions/net-kourier, pkg/generator/caches.go `NewCaches`) creates the
    `__extAuthZCluster` Envoy cluster only when the controller starts, while the ext-authz filter reaches
    the listeners at the next resync: patched but not restarted, Envoy answers every request with 403.
    """
    text = (ROOT / where).read_text()
    assert authz_steps_in(text) == [
        "wait ksvc/authz",
        "patch configmap config-kourier",
        "rollout restart deployment/net-kourier",
        "rollout status deployment/net-kourier",
    ]


def test_the_readme_names_the_net_kourier_release_that_reads_the_extauthz_keys() -> None:
    """The extauthz-* keys of config-kourier are read since net-kourier knative-v1.19.0 (#1334)."""
    assert f"net-kourier **{MIN_NET_KOURIER} or newer**" in (ROOT / "README.md").read_text()
