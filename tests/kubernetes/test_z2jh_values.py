"""The deploy files agree with each other where the fake cluster cannot check them.

The end-to-end test (test_z2jh.py) runs the hub from these files against a fake API that
does not enforce Services or NetworkPolicies and cannot mount the chart's Secret into a pod;
these tests hold the pieces that make those work on a real cluster to what the hub uses.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
from traitlets.config import Config

from pangeohub.scratch.hook import ScratchEnvironment

from .z2jh_chart import RELEASE, apply_chart, load_values, lookup, merge, write_config_d

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@pytest.fixture
def values() -> dict:
    return load_values(DEPLOY / "values.yaml")


def hub_config(values: dict) -> Config:
    c = Config()
    for section, cfg in values["hub"]["config"].items():
        c[section].update(cfg)
    return c


def test_values_files_merge_as_helm_merges_them():
    base = {"hub": {"config": {"A": {"x": 1, "y": [1, 2]}}, "keep": True}, "cull": {"on": 1}}
    over = {"hub": {"config": {"A": {"y": [3]}, "B": {"z": 2}}}, "cull": None}
    assert merge(base, over) == {
        "hub": {"config": {"A": {"x": 1, "y": [3]}, "B": {"z": 2}}, "keep": True}
    }


def test_user_pods_get_the_scratch_client_files_the_hub_writes(values, tmp_path):
    """singleuser.extraFiles mounts, at client_config_dir, what the hub's hook writes."""
    c = hub_config(values)
    scratch = ScratchEnvironment(config=c)
    files = scratch.backend().client_files(scratch.credential_command, scratch.service_url)
    mounted = {
        Path(f["mountPath"]).name: f["stringData"]
        for f in values["singleuser"]["extraFiles"].values()
        if Path(f["mountPath"]).parent == Path(scratch.client_config_dir)
    }
    assert mounted == files
    aws = configparser.ConfigParser()
    aws.read_string(mounted["aws_config"])
    assert aws["default"]["credential_process"] == "pangeohub-scratch-credentials"


def test_scratch_port_is_the_same_in_the_service_the_netpol_and_the_pods_address(values):
    c = hub_config(values)
    listen = urlparse(c.ScratchService.url)
    pods_use = urlparse(c.ScratchEnvironment.service_url)
    assert listen.hostname == "0.0.0.0", "the service must listen on the pod's address"
    # pods reach it through the chart's hub Service, named with the release's namespace
    # (the Dask workers get the address too, in their own namespace)
    assert pods_use.hostname == f"hub.{RELEASE}"
    assert pods_use.path == "/services/scratch/"
    (extra_port,) = [p for p in values["hub"]["service"]["extraPorts"] if p["name"] == "scratch"]
    assert listen.port == pods_use.port == extra_port["port"] == extra_port["targetPort"]

    (ingress,) = [
        rule
        for rule in values["hub"]["networkPolicy"]["ingress"]
        if [p["port"] for p in rule["ports"]] == [listen.port]
    ]
    assert [p["port"] for p in ingress["ports"]] == [listen.port]
    pod_labels = values["singleuser"]["extraLabels"]  # the chart's default labels user pods
    assert any(
        source["podSelector"]["matchLabels"].items() <= pod_labels.items()
        for source in ingress["from"]
    )
    egress_ports = [
        p["port"]
        for rule in values["singleuser"]["networkPolicy"]["egress"]
        if any(t["podSelector"]["matchLabels"].get("component") == "hub" for t in rule["to"])
        for p in rule["ports"]
    ]
    assert egress_ports == [listen.port]


def test_network_policy_rules_are_valid_kubernetes(values):
    for name, section in (("hub", values["hub"]), ("singleuser", values["singleuser"])):
        policy = section["networkPolicy"]
        doc = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name},
            "spec": {
                "podSelector": {"matchLabels": {"component": name}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": policy.get("ingress", []),
                "egress": policy.get("egress", []),
            },
        }
        kubernetes_validate.validate(doc, "1.31", strict=True)


def test_user_pods_may_reach_the_gateway_at_the_address_they_are_given(values):
    c = hub_config(values)
    gateway = urlparse(c.GatewayService.address)
    assert c.GatewayService.managed is False
    assert urlparse(c.GatewayService.proxy_address).hostname == gateway.hostname
    rules = [
        rule
        for rule in values["singleuser"]["networkPolicy"]["egress"]
        if any(
            t["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "traefik"
            for t in rule["to"]
        )
    ]
    # the dask-gateway chart's traefik container listens on 8000 (HTTP) and 8786 (the TCP
    # port for schedulers, deploy/dask-gateway values); the Service maps the proxy's port
    ports = [p["port"] for rule in rules for p in rule["ports"]]
    assert ports == [8000, 8786]
    assert urlparse(c.GatewayService.proxy_address).port == 8786


def test_user_image_recipe_adds_what_the_servers_need_and_replaces_nothing(values):
    recipe = (DEPLOY / "user-image" / "Dockerfile").read_text()
    assert re.search(r"pip install [^\n]*--no-deps", recipe), "the image's packages stay"
    copies = dict(re.findall(r"^COPY (\S+) (\S+)$", recipe, flags=re.MULTILINE))
    for source in copies:
        assert (REPO / source).exists(), source
    # the e2e test's fake image uses exactly these files
    activity = "pangeohub/jupyter-config/jupyter_server_config.d/pangeohub-activity.json"
    assert copies[activity].startswith("/etc/jupyter/jupyter_server_config.d")
    assert copies["deploy/user-image/dask/gateway.yaml"].startswith("/etc/dask/")
    console_scripts = (REPO / "setup.cfg").read_text()
    command = hub_config(values).ScratchEnvironment.credential_command
    assert re.search(rf"^\s*{command} = pangeohub\.scratch\.cli:main$", console_scripts, re.M)


def test_dask_config_of_the_user_image_defers_to_the_hub():
    import yaml

    settings = yaml.safe_load((DEPLOY / "user-image" / "dask" / "gateway.yaml").read_text())
    assert "address" not in settings["gateway"], "the hub gives each server the address"
    assert lookup(settings, "gateway.auth.type") == "jupyterhub"
    assert lookup(settings, "labextension.factory.class") == "GatewayCluster"


def test_hub_image_config_d_sets_defaults_and_keeps_the_values(values, tmp_path, monkeypatch):
    monkeypatch.setenv("Z2JH_PUBLIC_PORT", "1")
    monkeypatch.setenv("Z2JH_HUB_PORT", "2")
    monkeypatch.setenv("Z2JH_PROXY_API_PORT", "3")
    config_d = write_config_d(tmp_path / "config.d")  # as deploy/Dockerfile makes it

    without_extra = merge(values, {"hub": {"extraConfig": None}})
    c = Config()
    apply_chart(c, without_extra, config_d, tmp_path)
    assert c.JupyterHub.spawner_class == "pangeo-kubernetes"
    assert callable(c.JupyterHub.named_server_limit_per_user)
    assert c.ScratchEnvironment.service_url == "http://hub.pangeo:10101/services/scratch/"

    plain = merge(values, {"hub": {"extraConfig": None, "config": {"ScratchEnvironment": None}}})
    plain["hub"]["config"]["JupyterHub"].pop("spawner_class")
    c = Config()
    apply_chart(c, plain, config_d, tmp_path)
    assert c.JupyterHub.spawner_class == "pangeo-kubernetes"  # the chart's KubeSpawner, switched
    assert c.ScratchEnvironment.credential_command == "pangeohub-scratch-credentials"
    assert c.ScratchEnvironment.client_config_dir == "/etc/pangeohub/scratch-client"


def test_pangeohub_entry_point_sorts_last_in_extra_config(values):
    entries = sorted(values["hub"]["extraConfig"])
    assert entries[-1] == "zz-pangeohub"
    assert "pangeohub.configure(c)" in values["hub"]["extraConfig"][entries[-1]]


# what an admin replaces in the values (YOUR-... placeholders)
ADMIN_SETS = {"hub": {"config": {"S3ScratchBackend": {"bucket": "pangeo-scratch"}}}}


@pytest.fixture
def chart_configuration(values, tmp_path, monkeypatch):
    """configure(extra) -> the hub's configuration from the deploy files (+ extra values),
    entry point included; what the hub does at start-up, without starting it."""
    for name in ("Z2JH_PUBLIC_PORT", "Z2JH_HUB_PORT", "Z2JH_PROXY_API_PORT"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    config_d = write_config_d(tmp_path / "config.d")  # as deploy/Dockerfile makes it

    def configure(extra: dict) -> Config:
        c = Config()
        apply_chart(c, merge(merge(values, ADMIN_SETS), extra), config_d, tmp_path)
        return c

    return configure


@pytest.mark.parametrize(
    "extra, words",
    [
        (
            {"cull": {"enabled": True, "removeNamedServers": True}},
            "'jupyterhub-idle-culler' runs the idle culler with --remove-named-servers",
        ),
        ({"cull": {"enabled": True, "users": True}}, "with --cull-users"),
        (
            {"singleuser": {"storage": {"dynamic": {"pvcNameTemplate": "claim-{username}"}}}},
            "{user_server}",
        ),
        (
            {"hub": {"config": {"PangeoPolicy": {"max_cpu_limit": 4}}}},
            "cpu_limit 8.0 exceeds PangeoPolicy.max_cpu_limit (4.0)",
        ),
    ],
    ids=["cull.removeNamedServers", "cull.users", "shared-claim", "profile-past-bound"],
)
def test_values_pangeohub_cannot_honour_stop_the_hub_with_the_reason(
    chart_configuration, extra, words
):
    with pytest.raises(SystemExit) as refused:
        chart_configuration(extra)
    message = str(refused.value)
    assert message.startswith("pangeohub configuration error: ") and words in message


def test_the_chart_s_safe_culler_is_allowed(chart_configuration):
    c = chart_configuration({"cull": {"enabled": True}})
    names = [s["name"] for s in c.JupyterHub.services]
    assert "jupyterhub-idle-culler" in names and "idle-culler" in names
