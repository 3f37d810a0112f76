"""The fake cluster's DNS and pod network for a Python process (tests/k8s_fake/endpoints.py).

Loaded through PYTHONPATH. Resolves the names in the hosts file named by $K8S_FAKE_HOSTS
(``<service>.<namespace>`` and its longer forms), read at each lookup; every other name
goes to the system resolver unchanged. In a pod ($K8S_FAKE_POD_IP set), listening on all
addresses ("", "0.0.0.0", "::", None) listens on the pod's own address, as it would in
the pod's network namespace.

c-ares (aiodns) resolves names itself, past getaddrinfo, so it is hidden: aiohttp then
uses its threaded resolver, which asks getaddrinfo.
"""

import importlib.abc
import os
import socket
import sys

_real_getaddrinfo = socket.getaddrinfo


def _lookup(host):
    path = os.environ.get("K8S_FAKE_HOSTS")
    if not path or not isinstance(host, str) or "." not in host:
        return []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    host = host.rstrip(".")
    return [line.split()[0] for line in lines if host in line.split()[1:]]


_WILDCARD = (None, "", "0.0.0.0", "::")
_real_bind = socket.socket.bind


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    host = host.decode() if isinstance(host, bytes) else host
    pod_ip = os.environ.get("K8S_FAKE_POD_IP")
    if pod_ip and host in _WILDCARD:
        return _real_getaddrinfo(pod_ip, port, socket.AF_INET, type, proto, flags)
    ips = _lookup(host)
    if ips:
        return _real_getaddrinfo(ips[0], port, family, type, proto, flags)
    return _real_getaddrinfo(host, port, family, type, proto, flags)


def bind(self, address):
    pod_ip = os.environ.get("K8S_FAKE_POD_IP")
    if pod_ip and self.family == socket.AF_INET and address[0] in _WILDCARD:
        address = (pod_ip, *address[1:])
    return _real_bind(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.bind = bind


class _NoCAres(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "aiodns" or name.startswith("aiodns."):
            raise ImportError("aiodns is hidden by the fake cluster's DNS")
        return None


sys.meta_path.insert(0, _NoCAres())
