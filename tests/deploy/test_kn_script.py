"""`knative/kn.sh` hands kn arguments the way kn reads them (issue 13 item 3)."""

from __future__ import annotations

import shlex

import yaml

from cli.manifests import rendered_files

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
