"""Light pods: every pod answered by one server in the fake kubelet, over real HTTP."""

from __future__ import annotations

import requests

from ..k8s_fake import FakeKube
from ..k8s_fake.lightpods import LightKubelet


def pod(name: str, port: int = 8888) -> dict:
    env = [
        {"name": "JUPYTERHUB_SERVICE_URL", "value": f"http://0.0.0.0:{port}/user/{name}/"},
        {"name": "JUPYTERHUB_USER", "value": name},
    ]
    return {
        "metadata": {"name": f"jupyter-{name}"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "notebook", "image": "pangeo/base-notebook:2024.01.01", "env": env}
            ],
        },
    }


def test_light_pods_answer_on_their_own_address_with_no_process():
    with FakeKube(namespace="light", kubelet_class=LightKubelet) as kube:
        for name in ("ada", "grace"):
            kube.create("pods", pod(name))

        def all_running():
            pods = kube.list("pods", "light")
            phases = [(p.get("status") or {}).get("phase") for p in pods]
            return pods if phases == ["Running", "Running"] else None

        running = kube.wait_for(all_running, what="both pods running")
        ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in running}
        assert len(set(ips.values())) == 2, "each pod has its own address"
        assert [pid for pid in kube.processes() if pid is not None] == [], "no process per pod"
        ada = f"http://{ips['jupyter-ada']}:8888"
        assert requests.get(f"{ada}/user/ada/api", timeout=5).json() == {"version": "light-pod"}
        assert requests.get(f"{ada}/user/ada/env", timeout=5).json()["JUPYTERHUB_USER"] == "ada"
        grace = f"http://{ips['jupyter-grace']}:8888"
        assert requests.get(f"{grace}/user/grace/env", timeout=5).json()["JUPYTERHUB_USER"] == (
            "grace"
        )

        kube.delete("pods", "jupyter-ada", "light")
        kube.wait_for(lambda: kube.get("pods", "jupyter-ada", "light") is None, what="ada gone")
        try:
            requests.get(f"{ada}/user/ada/api", timeout=2)
            answered = True
        except requests.ConnectionError:
            answered = False
        assert not answered, "a deleted pod stops answering"
        assert requests.get(f"{grace}/user/grace/api", timeout=5).status_code == 200
