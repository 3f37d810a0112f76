"""A small evaluator of Kubernetes NetworkPolicy and RBAC rules, for the deploy files.

The fake API server enforces neither, so the rules themselves are evaluated here, with
the semantics of the Kubernetes documentation:

- NetworkPolicy: a pod selected by no policy of a type (Ingress/Egress) is open in that
  direction; a selected pod accepts only what some rule of a selecting policy allows
  (peers: podSelector in the policy's namespace, namespaceSelector, ipBlock with except;
  ports by number or by the target container's port name; no ports: all). A connection
  happens when the source's egress and the target's ingress both allow it.
- RBAC: a request (verb, API group, resource, namespace, name) is allowed when a rule of
  a Role in that namespace, or of a ClusterRole bound to the subject, matches it.

:func:`chart_policies` renders the Zero to JupyterHub chart's own policies for the hub,
the proxy and user pods (its templates/hub/netpol.yaml, proxy/netpol.yaml,
singleuser/netpol.yaml and the egress rules of _helpers-netpol.tpl) from the values,
defaults included.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .z2jh_chart import RELEASE, lookup

PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


@dataclass
class Pod:
    """A pod (or, with ``ip`` only and no labels, an address outside the cluster)."""

    name: str
    ip: str
    labels: dict = field(default_factory=dict)
    namespace: str = RELEASE
    ports: dict = field(default_factory=dict)  # container port name -> number
    in_cluster: bool = True


def _matches(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    wanted = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in wanted.items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value, values = labels.get(expression["key"]), expression.get("values") or []
        operator = expression["operator"]
        if operator == "In" and value not in values:
            return False
        if operator == "NotIn" and value in values:
            return False
        if operator == "Exists" and expression["key"] not in labels:
            return False
        if operator == "DoesNotExist" and expression["key"] in labels:
            return False
    return True


def _peer_matches(peer: dict, policy_ns: str, other: Pod, namespaces: dict) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
    if not other.in_cluster:
        return False
    if "namespaceSelector" in peer:
        ns_labels = namespaces.get(other.namespace, {})
        ns_labels = {"kubernetes.io/metadata.name": other.namespace, **ns_labels}
        if not _matches(peer["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    if "podSelector" in peer:
        return _matches(peer["podSelector"], other.labels)
    return True


def _port_matches(ports: list | None, target: Pod, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        number = target.ports.get(wanted) if isinstance(wanted, str) else wanted
        end = entry.get("endPort", number)
        if number is not None and number <= port <= end:
            return True
    return False


class Network:
    """Policies in force in a cluster; :meth:`allows` one connection."""

    def __init__(self, policies: list[dict], namespaces: dict | None = None):
        self.policies = policies
        self.namespaces = namespaces or {}

    def _selecting(self, pod: Pod, kind: str) -> list[dict]:
        selected = []
        for policy in self.policies:
            spec = policy["spec"]
            ns = policy["metadata"].get("namespace", RELEASE)
            types = spec.get("policyTypes") or (
                ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
            )
            if pod.in_cluster and ns == pod.namespace and kind in types:
                if _matches(spec.get("podSelector", {}), pod.labels) or not spec.get(
                    "podSelector", {}
                ):
                    selected.append(policy)
        return selected

    def _allowed(self, pod: Pod, other: Pod, target: Pod, port, protocol, kind) -> bool:
        policies = self._selecting(pod, kind)
        if not policies:
            return True
        key, peers = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        for policy in policies:
            ns = policy["metadata"].get("namespace", RELEASE)
            for rule in policy["spec"].get(key) or []:
                if not _port_matches(rule.get("ports"), target, port, protocol):
                    continue
                if not rule.get(peers) or any(
                    _peer_matches(p, ns, other, self.namespaces) for p in rule[peers]
                ):
                    return True
        return False

    def allows(self, source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
        egress = not source.in_cluster or self._allowed(
            source, target, target, port, protocol, "Egress"
        )
        ingress = not target.in_cluster or self._allowed(
            target, source, target, port, protocol, "Ingress"
        )
        return egress and ingress


def _egress_allow_rules(values: dict, netpol: dict) -> list[dict]:
    """The chart's jupyterhub.networkPolicy.renderEgressRules."""
    allow = netpol.get("egressAllowRules") or {}
    metadata = f"{lookup(values, 'singleuser.cloudMetadata.ip')}/32"
    rules = []
    dns_to = []
    if allow.get("dnsPortsCloudMetadataServer"):
        dns_to.append({"ipBlock": {"cidr": metadata}})
    if allow.get("dnsPortsKubeSystemNamespace"):
        dns_to.append(
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
        )
    if allow.get("dnsPortsPrivateIPs"):
        dns_to += [{"ipBlock": {"cidr": c}} for c in PRIVATE]
    if dns_to:
        ports = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
        rules.append({"ports": ports, "to": dns_to})
    if allow.get("nonPrivateIPs"):
        block = {"cidr": "0.0.0.0/0", "except": [*PRIVATE, metadata]}
        rules.append({"to": [{"ipBlock": block}]})
    if allow.get("privateIPs"):
        rules.append({"to": [{"ipBlock": {"cidr": c}} for c in PRIVATE]})
    if allow.get("cloudMetadataServer"):
        rules.append({"to": [{"ipBlock": {"cidr": metadata}}]})
    return rules + list(netpol.get("egress") or [])


def _chart_labels(component: str) -> dict:
    return {"app": "jupyterhub", "release": RELEASE, "component": component}


def _to(component: str, *ports) -> dict:
    """An egress rule to the chart's ``component`` pods on ``ports``."""
    selector = {"podSelector": {"matchLabels": _chart_labels(component)}}
    return {"to": [selector], "ports": [{"port": p} for p in ports]}


def _from_labelled(access: str, port) -> dict:
    """An ingress rule on ``port`` from pods labelled hub.jupyter.org/network-access-<access>."""
    labels = {f"hub.jupyter.org/network-access-{access}": "true"}
    return {"ports": [{"port": port}], "from": [{"podSelector": {"matchLabels": labels}}]}


# component -> (where its networkPolicy is in the values, its own ingress and egress rules)
CHART_POLICIES = {
    "hub": (
        "hub.networkPolicy",
        [_from_labelled("hub", "http")],
        [_to("proxy", 8001), _to("singleuser-server", 8888)],
    ),
    "proxy": (
        "proxy.chp.networkPolicy",
        [_from_labelled("proxy-http", "http"), _from_labelled("proxy-api", "api")],
        [_to("hub", 8081), _to("singleuser-server", 8888)],
    ),
    "singleuser-server": (
        "singleuser.networkPolicy",
        [_from_labelled("singleuser", "notebook-port")],
        [_to("hub", 8081), _to("proxy", 8000), _to("autohttps", 8080, 8443)],
    ),
}


def chart_policies(values: dict) -> list[dict]:
    """The chart's NetworkPolicies for the hub, proxy and user pods, from the values
    (interNamespaceAccessLabels "ignore", the default pangeohub's values keep)."""
    policies = []
    for component, (key, ingress, egress) in CHART_POLICIES.items():
        netpol = lookup(values, key)
        if not netpol.get("enabled"):
            continue
        open_ports = netpol.get("allowedIngressPorts") or []
        if open_ports:
            ingress = [{"ports": [{"port": p} for p in open_ports]}, *ingress]
        policies.append(
            {
                "metadata": {"name": component},
                "spec": {
                    "podSelector": {"matchLabels": _chart_labels(component)},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": ingress + list(netpol.get("ingress") or []),
                    "egress": egress + _egress_allow_rules(values, netpol),
                },
            }
        )
    return policies


# --- RBAC --------------------------------------------------------------------------------


class Access:
    """The RBAC objects of some manifests; :meth:`allows` one request of a service account."""

    def __init__(self, documents: list[dict], namespace: str = RELEASE):
        self.roles = {}
        self.bindings = []
        for doc in documents:
            kind = doc["kind"]
            ns = doc["metadata"].get("namespace", namespace)
            if kind in ("Role", "ClusterRole"):
                key = (kind, None if kind == "ClusterRole" else ns, doc["metadata"]["name"])
                self.roles[key] = doc.get("rules") or []
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                self.bindings.append((kind, ns, doc))

    def _rules(self, account: str, account_ns: str, namespace: str | None):
        for kind, ns, binding in self.bindings:
            subjects = binding.get("subjects") or []
            if not any(
                s["kind"] == "ServiceAccount"
                and s["name"] == account
                and s.get("namespace", ns) == account_ns
                for s in subjects
            ):
                continue
            if kind == "RoleBinding" and ns != namespace:
                continue  # a RoleBinding grants only in its own namespace
            ref = binding["roleRef"]
            role_ns = None if ref["kind"] == "ClusterRole" else ns
            yield from self.roles.get((ref["kind"], role_ns, ref["name"]), [])

    def allows(
        self,
        account: str,
        verb: str,
        resource: str,
        namespace: str | None = RELEASE,
        name: str | None = None,
        group: str = "",
        account_ns: str = RELEASE,
    ) -> bool:
        """``namespace`` None: a request across all namespaces (e.g. a cluster-wide list)."""
        for rule in self._rules(account, account_ns, namespace):
            if not ({group, "*"} & set(rule.get("apiGroups") or [])):
                continue
            if not ({resource, "*"} & set(rule.get("resources") or [])):
                continue
            if not ({verb, "*"} & set(rule.get("verbs") or [])):
                continue
            names = rule.get("resourceNames")
            if names and name not in names:
                continue
            return True
        return False
