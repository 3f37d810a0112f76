"""The whole hub on Zero to JupyterHub, configured by the deploy files alone.

The real ``jupyterhub`` (with the real configurable-http-proxy) is configured exactly as the
chart configures it (:mod:`tests.kubernetes.z2jh_chart`): ``deploy/values.yaml`` merged with a
test overlay as ``helm -f values.yaml -f overlay.yaml`` would merge them, the hub image's
config.d file (``deploy/pangeohub_z2jh.py``, where deploy/Dockerfile puts it) and the values'
``hub.extraConfig``. Nothing is wired by the test. The overlay holds only what an admin's
secrets.yaml would (the OAuth app, the gateway token) and what this machine needs instead of
a cluster: the fake Kubernetes API (through ``$KUBECONFIG``), the fake GitHub, moto for S3
and STS, loopback addresses, short timeouts.

Pods are real processes of the fake kubelet on their own loopback addresses, running
``jupyterhub-singleuser`` from an image that has what deploy/user-image/Dockerfile adds
(the activity extension, the dask-gateway client configuration, the credential helper).
The hub has no AWS keys: like a hub pod with IRSA, it has a role ARN and a web identity
token file, which the scratch service exchanges at (moto's) STS for its own identity.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.fake_github import FakeGitHub
from tests.hubprocess import HubProcess, free_port, stop_process_group, wait_for_http
from tests.scratch.conftest import session_policy_of

from ..k8s_fake import FakeKube, default_images
from .z2jh_chart import CHART_NEWEST, CHART_PINNED, HUB_IMAGE, write_config_d

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NAMESPACE = "pangeo"
BUCKET = "pangeo-scratch-z2jh"
USER_ROLE = "arn:aws:iam::123456789012:role/hub-scratch-user"
HUB_ROLE = "arn:aws:iam::123456789012:role/hub-scratch-broker"
IMAGE = "pangeo/pangeo-notebook:2024.01.15"  # the values' Small profile's default image


def user_image(root: Path) -> dict:
    """The fake registry, whose Pangeo images have what the user image recipe adds.

    deploy/user-image/Dockerfile copies the activity extension's Jupyter config to
    /etc/jupyter, pangeohub's labextension under /usr/local/share/jupyter and the dask
    config to /etc/dask; here the same files are found through JUPYTER_CONFIG_PATH /
    JUPYTER_PATH / DASK_CONFIG, and pangeohub (the credential helper) is on PATH.
    """
    images = default_images(root)
    # a copy: dask-labextension writes its default labextension.yaml into DASK_CONFIG
    dask_config = Path(root) / "user-image-dask"
    shutil.copytree(DEPLOY / "user-image" / "dask", dask_config, dirs_exist_ok=True)
    for name in ("pangeo/pangeo-notebook:2024.01.15", "pangeo/ml-notebook:2024.01.15"):
        env = images[name]["env"]
        paths = [str(REPO / "pangeohub" / "jupyter-config"), env.get("JUPYTER_CONFIG_PATH", "")]
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in paths if p)
        env["JUPYTER_PATH"] = str(REPO / "pangeohub" / "jupyter-data")  # its labextension
        env["DASK_CONFIG"] = str(dask_config)
    return images


@pytest.fixture(scope="module")
def cluster():
    from kubernetes_asyncio.config import kube_config as kube_config_module

    with FakeKube(namespace=NAMESPACE, cpu="8", backoff=0.2, images=None) as kube:
        kube.images.update(user_image(kube.root))
        old = kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION
        kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION = str(kube.kubeconfig)
        yield kube
        kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION = old


@pytest.fixture(scope="module")
def github():
    fake = FakeGitHub().start()
    for login in ("grace", "katherine", "carol", "hedy", "ada"):
        fake.add_user(login)
    fake.add_team("pangeo-data", "climate", members=["grace", "ada"])
    fake.add_team("pangeo-data", "oceans", members=["katherine", "hedy"])
    fake.add_team("pangeo-data", "hub-admins", members=[])
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def moto_url():
    """moto's S3 + STS on loopback, with the scratch bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.session.Session(
        aws_access_key_id="admin", aws_secret_access_key="admin", region_name="us-east-1"
    ).client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def overlay(hub: HubProcess, github: FakeGitHub, moto_url: str, scratch_port: int, gateway) -> dict:
    """The test's second values file (what an admin's secrets.yaml holds, plus this machine)."""
    return {
        "hub": {
            "config": {
                "GitHubTeamsAuthenticator": {
                    "github_url": github.url,
                    "client_id": github.client_id,
                    "client_secret": github.client_secret,
                    "oauth_callback_url": f"{hub.url}/hub/oauth_callback",
                    "github_timeout": 3,
                },
                "PangeoPolicy": {"named_server_limit": 1},
                "KubeSpawner": {
                    "start_timeout": 60,
                    "http_timeout": 60,
                    "k8s_api_request_timeout": 3,
                    "k8s_api_request_retry_timeout": 6,
                    "delete_grace_period": 1,
                },
                "PangeoKubeSpawner": {"image_pull_timeout": 5, "scheduling_timeout": 5},
                "CullingPolicy": {"timeout": 40, "every": 3},
                "ScratchService": {"url": f"http://127.0.0.1:{scratch_port}"},
                # the values' 0.0.0.0:8099 (for traefik in another pod), on loopback here
                "DashboardGuard": {"ip": "127.0.0.1", "port": free_port()},
                "S3ScratchBackend": {
                    "bucket": BUCKET,
                    "region": "us-east-1",
                    "role_arn": USER_ROLE,
                    "endpoint_url": moto_url,
                },
                "ScratchEnvironment": {
                    "service_url": f"http://127.0.0.1:{scratch_port}/services/scratch/",
                    "client_config_dir": str(hub.workdir / "scratch-client"),
                },
                "GatewayService": {
                    "service_url": f"http://127.0.0.1:{gateway.port}",
                    "address": gateway.address,
                    "proxy_address": f"gateway://127.0.0.1:{gateway.scheduler_port}",
                    "api_token": gateway.token,
                },
            }
        }
    }


class ExternalGateway:
    """A dask-gateway-server the hub does not start, where the dask-gateway chart's would be.

    It runs pangeohub's gateway backend (the same routes the hub calls on the chart's
    gateway) with local processes for clusters; the gateway's Kubernetes backend has tests
    of its own. It authenticates users through the hub
    with its own token, which the values give the hub as c.GatewayService.api_token.
    """

    def __init__(self, workdir: Path, hub: HubProcess):
        self.workdir, self.hub = workdir, hub
        self.port, self.scheduler_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.port}/services/dask-gateway"
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "PANGEOHUB_STATE_DIR": str(self.workdir),
            "JUPYTERHUB_API_URL": f"http://127.0.0.1:{self.hub.hub_port}/hub/api",
            "JUPYTERHUB_API_TOKEN": self.token,
        }
        command = [
            sys.executable,
            "-m",
            "dask_gateway_server",
            "-f",
            str(REPO / "pangeohub" / "gateway" / "local_gateway_config.py"),
            f"--Proxy.address=127.0.0.1:{self.port}",
            f"--Proxy.tcp_address=127.0.0.1:{self.scheduler_port}",
            "--Proxy.prefix=/services/dask-gateway",
        ]
        log = open(self.workdir / "gateway.log", "ab")
        self.proc = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        if not wait_for_http(f"{self.address}/api/health", 60, proc=self.proc):
            self.stop()
            raise AssertionError((self.workdir / "gateway.log").read_text()[-3000:])

    def stop(self) -> None:
        stop_process_group(self.proc)
        self.proc = None

    def clusters(self, session) -> list[str]:
        """Names of the user's clusters, asked with a token of the signed-in user (from a
        process of its own, as any client of the gateway)."""
        name = self.hub.api(session, "get", "/user").json()["name"]
        body = {"note": "z2jh test", "scopes": ["access:services!service=dask-gateway"]}
        token = self.hub.api(session, "post", f"/users/{name}/tokens", json=body).json()["token"]
        env = {
            "PATH": os.environ["PATH"],
            "DASK_GATEWAY__ADDRESS": self.address,
            "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            "JUPYTERHUB_API_TOKEN": token,
        }
        code = (
            "import dask_gateway; print([c.name for c in dask_gateway.Gateway().list_clusters()])"
        )
        result = in_pod(env, code)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.replace("'", '"'))


def chart_hub(
    workdir: Path,
    cluster,
    github,
    moto_url,
    extra_values: dict | None = None,
    version: str = CHART_PINNED,
):
    """A HubProcess configured by the chart stand-in (the chart ``version``'s defaults)
    from the deploy files and an overlay."""
    hub = HubProcess(workdir, config_file=REPO / "tests" / "kubernetes" / "z2jh_hub_config.py")
    scratch_port = free_port()
    (workdir / "gateway").mkdir(exist_ok=True)
    hub.gateway = ExternalGateway(workdir / "gateway", hub)
    values = overlay(hub, github, moto_url, scratch_port, hub.gateway)
    (workdir / "overlay.yaml").write_text(yaml.safe_dump(values))
    files = [DEPLOY / "values.yaml", workdir / "overlay.yaml"]
    if extra_values:
        (workdir / "extra.yaml").write_text(yaml.safe_dump(extra_values))
        files.append(workdir / "extra.yaml")
    config_d = write_config_d(workdir / "jupyterhub_config.d")  # as deploy/Dockerfile makes it
    token_file = workdir / "web-identity-token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.sig")
    hub.extra_env = {
        "Z2JH_CHART_VERSION": version,
        "Z2JH_VALUES": os.pathsep.join(str(f) for f in files),
        "Z2JH_CONFIG_D": str(config_d),
        "Z2JH_PUBLIC_PORT": str(hub.port),
        "Z2JH_HUB_PORT": str(hub.hub_port),
        "Z2JH_PROXY_API_PORT": str(hub.proxy_api_port),
        "POD_NAMESPACE": NAMESPACE,
        "KUBECONFIG": str(cluster.kubeconfig),
        # the hub pod's identity with IRSA: a role and a token, no keys
        "AWS_ROLE_ARN": HUB_ROLE,
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_SESSION_NAME": "pangeohub-hub",
        "AWS_ENDPOINT_URL_STS": moto_url,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        hub.extra_env[key] = ""
    hub.scratch_port = scratch_port
    hub.values = values
    return hub


@pytest.fixture(scope="module")
def hub(cluster, github, moto_url, tmp_path_factory):
    hub = chart_hub(tmp_path_factory.mktemp("z2jh"), cluster, github, moto_url)
    hub.gateway.start()
    try:
        hub.start(timeout=90)
        yield hub
        hub.stop()
    finally:
        hub.gateway.stop()


def github_sign_in(hub: HubProcess, github: FakeGitHub, login: str) -> requests.Session:
    """Sign in as a browser does: the hub sends us to GitHub, we approve, GitHub sends us back."""
    github.signed_in = login
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/oauth_login", timeout=10)
    assert page.url.startswith(f"{github.url}/login/oauth/authorize"), page.url
    form = {
        name: html.unescape(value)
        for name, value in re.findall(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text
        )
    }
    session.post(page.url, data={**form, "decision": "approve"}, timeout=30)
    session.get(f"{hub.url}/hub/home", timeout=10)  # sets the hub's _xsrf cookie
    return session


def pod_name(user: str, server: str = "") -> str:
    return f"jupyter-{user}" + (f"--{server}" if server else "")


def pod_environment(cluster, name: str) -> dict[str, str]:
    """The environment of the pod's running process (what code in the pod sees)."""
    procs = cluster.kubelet.procs.get((NAMESPACE, name)) or []
    assert procs, f"pod {name} has no running process"
    raw = Path(f"/proc/{procs[0].pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def in_pod(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` with a pod's environment, as a notebook in that pod would."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=env.get("HOME"),
    )


# --- sign-in and profiles -------------------------------------------------------------


def test_sign_in_by_team_shows_only_that_teams_profiles(hub, github, cluster):
    grace = github_sign_in(hub, github, "grace")
    me = hub.api(grace, "get", "/user").json()
    assert me["name"] == "grace" and "pangeo-data:climate" in me["groups"]
    assert "Large" in grace.get(f"{hub.url}/hub/spawn", timeout=10).text

    katherine = github_sign_in(hub, github, "katherine")
    page = katherine.get(f"{hub.url}/hub/spawn", timeout=10).text
    assert "Small" in page and "Large" not in page
    xsrf = katherine.cookies.get("_xsrf", path="/hub/")
    forged = katherine.post(
        f"{hub.url}/hub/spawn", data={"profile": "large", "_xsrf": xsrf}, timeout=10
    )
    assert forged.status_code == 403
    assert "You may not use the profile 'large'" in html.unescape(forged.text)
    # The chart answers spawn requests at once (slow_spawn_timeout 0); a forbidden profile
    # is refused before any spawn all the same, for the default server as for a named one.
    for server in ("server", "servers/big"):
        for body in ({"profile": "large"}, {"user_options": {"profile": "large"}}):
            response = hub.api(katherine, "post", f"/users/katherine/{server}", json=body)
            assert response.status_code == 403, response.text
            assert "You may not use the profile 'large'" in response.json()["message"]
    assert cluster.get("pods", pod_name("katherine")) is None
    assert "big" not in hub.api(katherine, "get", "/user").json()["servers"]

    github.signed_in = "carol"  # in no admitted team
    carol = requests.Session()
    page = carol.get(f"{hub.url}/hub/oauth_login", timeout=10)
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    refused = carol.post(page.url, data={**form, "decision": "approve"}, timeout=30)
    assert refused.status_code == 403 and "Not in an admitted GitHub team" in refused.text


def test_named_server_up_to_the_limit(hub, github, cluster):
    katherine = github_sign_in(hub, github, "katherine")
    response = hub.api(katherine, "post", "/users/katherine/servers/run1", json={})
    assert response.status_code in (201, 202), response.text
    hub.wait_for_server(katherine, "katherine", "run1")
    assert cluster.get("persistentvolumeclaims", "claim-katherine--run1") is not None

    response = hub.api(katherine, "post", "/users/katherine/servers/run2", json={})
    assert response.status_code == 403
    assert "katherine already has 1 named server" in response.json()["message"]
    assert cluster.get("pods", pod_name("katherine", "run2")) is None

    response = hub.api(katherine, "delete", "/users/katherine/servers/run1", json={"remove": True})
    assert response.status_code in (202, 204)
    cluster.wait_for(
        lambda: cluster.get("persistentvolumeclaims", "claim-katherine--run1") is None,
        30,
        what="the deleted server's claim is gone",
    )


# --- a user pod: scratch and Dask Gateway --------------------------------------------------


@pytest.fixture(scope="module")
def grace_pod(hub, github, cluster):
    """grace's default server, started once; the culling test below waits for it to stop."""
    grace = github_sign_in(hub, github, "grace")
    response = hub.api(grace, "post", "/users/grace/server", json={})
    assert response.status_code in (201, 202), response.text
    hub.wait_for_server(grace, "grace")
    return grace, pod_environment(cluster, pod_name("grace"))


def test_user_pod_has_scratch_and_working_credentials_for_its_own_prefix_only(
    grace_pod, moto_url, iam_evaluator
):
    _, env = grace_pod
    assert env["PANGEO_SCRATCH"] == f"s3://{BUCKET}/scratch/grace"
    assert env["PANGEO_SCRATCH_STATUS"] == "available"
    config = Path(env["AWS_CONFIG_FILE"]).read_text()
    assert "credential_process = pangeohub-scratch-credentials" in config

    # boto3 in the pod runs the credential helper from the user image, and writes and reads.
    result = in_pod(
        env,
        "import boto3, os\n"
        "s3 = boto3.client('s3')\n"
        "key = os.environ['PANGEO_SCRATCH'].split('/', 3)[3] + '/hello.txt'\n"
        f"s3.put_object(Bucket={BUCKET!r}, Key=key, Body=b'hi')\n"
        f"print(s3.get_object(Bucket={BUCKET!r}, Key=key)['Body'].read().decode())\n"
        "print(boto3.session.Session().get_credentials().get_frozen_credentials().access_key)\n",
    )
    assert result.returncode == 0, result.stderr
    body, access_key = result.stdout.split()
    assert body == "hi"

    policy = session_policy_of(access_key)
    own, other = (
        f"arn:aws:s3:::{BUCKET}/scratch/grace/x",
        f"arn:aws:s3:::{BUCKET}/scratch/katherine/x",
    )
    assert iam_evaluator(policy, "s3:PutObject", own)
    assert not iam_evaluator(policy, "s3:GetObject", other)
    assert not iam_evaluator(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/scratch/gracey/x")

    # the helper itself: no token, a clear error and no credentials
    helper = ["pangeohub-scratch-credentials"]  # found on the image's PATH
    result = subprocess.run(helper, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and json.loads(result.stdout)["AccessKeyId"]
    result = subprocess.run(
        helper, env={**env, "JUPYTERHUB_API_TOKEN": ""}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1 and "JUPYTERHUB_API_TOKEN is not set" in result.stderr


def test_scratch_service_uses_the_hub_pods_identity(grace_pod):
    """IRSA: the service's credentials came from AssumeRoleWithWebIdentity on the hub's role."""
    from moto.sts.models import sts_backends

    web_identity = [
        role
        for account in sts_backends.values()
        for backend in account.values()
        for role in backend.assumed_roles
        if role.role_arn == HUB_ROLE
    ]
    assert web_identity, "the scratch service never assumed the hub's role"


def test_user_pod_reaches_the_external_gateway_with_no_configuration(grace_pod, hub):
    _, env = grace_pod
    gateway = hub.values["hub"]["config"]["GatewayService"]
    assert env["DASK_GATEWAY__ADDRESS"] == gateway["address"]
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == gateway["proxy_address"]
    result = in_pod(
        env,
        "import dask, dask_gateway\n"
        "g = dask_gateway.Gateway()\n"
        "print(g.address, g.proxy_address, type(g.auth).__name__)\n"
        "print(dask.config.get('labextension.factory.class'))\n",
    )
    assert result.returncode == 0, result.stderr
    address, proxy, auth, factory = result.stdout.split()
    assert (address, auth, factory) == (gateway["address"], "JupyterHubAuth", "GatewayCluster")
    assert proxy.endswith(gateway["proxy_address"].split("://", 1)[1])

    # a cluster, with no arguments, through the external gateway; left running on purpose:
    # the culling test below checks that stopping the server stops it
    result = in_pod(
        env,
        "import dask_gateway\n"
        "cluster = dask_gateway.Gateway().new_cluster(shutdown_on_close=False)\n"
        "print(cluster.name)\n",
    )
    assert result.returncode == 0, result.stderr
    assert hub.gateway.clusters(grace_pod[0]) == [result.stdout.strip()]


def test_hub_registers_the_external_gateway_without_starting_it(hub, grace_pod):
    grace, _ = grace_pod
    token = hub.values["hub"]["config"]["GatewayService"]["api_token"]
    me = requests.get(
        f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert me.status_code == 200, me.text
    assert (me.json()["kind"], me.json()["name"]) == ("service", "dask-gateway")
    log = hub.log_path.read_text(errors="replace")
    assert "Starting service 'scratch'" in log and "Starting service 'idle-culler'" in log
    assert "Starting service 'dask-gateway'" not in log
    # the one-machine isolation line says nothing true of pods
    assert "isolated" not in log and "their own account" not in log
    scopes = hub.api(grace, "get", "/user").json()["scopes"]
    assert "access:services!service=dask-gateway" in scopes


# --- culling -----------------------------------------------------------------------------


def test_culler_in_the_hub_pod_stops_an_idle_pod_and_keeps_its_claim(hub, grace_pod, cluster):
    grace, _ = grace_pod
    hub.wait_for_stop(grace, "grace", timeout=60)
    cluster.wait_for(lambda: cluster.get("pods", pod_name("grace")) is None, 30, what="pod gone")
    assert cluster.get("persistentvolumeclaims", "claim-grace") is not None
    assert "Culling server grace" in hub.log_path.read_text(errors="replace")
    # the hub's stop hook asked the external gateway to stop the server's clusters
    cluster.wait_for(lambda: hub.gateway.clusters(grace) == [], 30, what="clusters stopped")


# --- refusals at start-up --------------------------------------------------------------------


def test_destructive_culler_in_extra_config_is_refused_at_start_up(
    cluster, github, moto_url, tmp_path
):
    """The chart's own cull.* settings are refused the same way (test_z2jh_values.py)."""
    culler = (
        "c.JupyterHub.services.append({'name': 'my-culler', 'command':"
        " ['python3', '-m', 'jupyterhub_idle_culler', '--remove-named-servers=true']})\n"
    )
    extra = {"hub": {"extraConfig": {"50-my-culler": culler}}}
    hub = chart_hub(tmp_path, cluster, github, moto_url, extra_values=extra)
    with pytest.raises(Exception) as failed:
        hub.start(timeout=60)
    hub.stop()
    message = str(failed.value)
    assert "exited" in message, message
    assert "pangeohub configuration error" in message
    assert "'my-culler' runs the idle culler with --remove-named-servers" in message
    assert "Traceback" not in message


def test_placeholder_bucket_stops_the_hub_with_one_line(cluster, github, moto_url, tmp_path):
    """docs/kubernetes.md step 6: the values' YOUR-SCRATCH-BUCKET, left as it is."""
    extra = {"hub": {"config": {"S3ScratchBackend": {"bucket": "YOUR-SCRATCH-BUCKET"}}}}
    hub = chart_hub(tmp_path, cluster, github, moto_url, extra_values=extra)
    with pytest.raises(Exception) as failed:
        hub.start(timeout=60)
    hub.stop()
    log = hub.log_path.read_text(errors="replace")
    lines = [line for line in log.splitlines() if "pangeohub configuration error" in line]
    assert lines == [
        "pangeohub configuration error: scratch: Bucket name 'YOUR-SCRATCH-BUCKET' is not "
        "valid: use 3-63 lower-case letters, digits, '.' or '-'. Set c.S3ScratchBackend.bucket."
    ], str(failed.value)
    assert "Starting service 'scratch'" not in log and "Traceback" not in log


# --- upgrade from the chart image's JupyterHub 5 ------------------------------------------


def jupyterhub5_python(version: str = CHART_PINNED) -> Path:
    """A Python with the chart's hub image's JupyterHub 5 (its recorded pins), made once
    with uv and kept under the user's cache directory between runs."""
    pins = HUB_IMAGE[version]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = cache / "pangeohub-tests" / f"k8s-hub-{version}"
    python = home / "bin" / "python"
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"k8s-hub-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be making it
        if not (home / "ready").exists():
            uv = str(Path(sys.executable).with_name("uv"))
            subprocess.run(
                [uv, "venv", "--quiet", "--clear", "-p", "python3", str(home)], check=True
            )
            packages = [f"{name}=={pins[name]}" for name in ("jupyterhub", "sqlalchemy", "alembic")]
            subprocess.run(
                [uv, "pip", "install", "--quiet", "-p", str(python), *packages],
                check=True,
                timeout=600,
            )
            (home / "ready").write_text(json.dumps(pins))
    return python


def test_the_newest_chart_upgrades_a_jupyterhub_5_database_and_starts_servers(
    cluster, github, moto_url, tmp_path
):
    """Chart 4.1.0's hub image ships JupyterHub 5; deploy/Dockerfile installs 6. A database
    JupyterHub 5.2.1 made (users, groups, named servers, tokens) is upgraded by the hub
    image's JupyterHub 6, started as the newest chart starts it (--upgrade-db with
    sqlite-pvc) from the deploy files, and everything in it is kept; then a server starts
    with pangeohub's profile under the newest chart's defaults (the pinned version's hub
    is the module's)."""
    hub = chart_hub(tmp_path, cluster, github, moto_url, version=CHART_NEWEST)
    made = tmp_path / "jupyterhub5"
    made.mkdir()
    making = subprocess.Popen(  # while the gateway starts
        [
            str(jupyterhub5_python()),
            str(Path(__file__).with_name("jupyterhub5_db.py")),
            f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}",  # where the chart keeps it
            str(made / "made.json"),
        ],
        cwd=made,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    hub.gateway.start()
    try:
        output, _ = making.communicate(timeout=120)
        assert making.returncode == 0, output.decode(errors="replace")[-3000:]
        old = json.loads((made / "made.json").read_text())
        assert old["version"] == HUB_IMAGE[CHART_PINNED]["jupyterhub"]
        hub.start(timeout=90)
        log = hub.log_path.read_text(errors="replace")
        assert "Upgrading sqlite:///" in log, "the hub did not upgrade the database"

        def api(login: str, path: str) -> requests.Response:
            headers = {"Authorization": f"token {old['tokens'][login]}"}
            return requests.get(f"{hub.url}/hub/api{path}", headers=headers, timeout=10)

        # A token made before the upgrade waits for its owner's next sign-in with GitHub:
        # JupyterHub 5's database holds no GitHub credentials to check their teams with.
        refused = api("ada", "/user")
        assert refused.status_code == 403, refused.text
        github_sign_in(hub, github, "ada")
        hedy = github_sign_in(hub, github, "hedy")

        ada = api("ada", "/users/ada?include_stopped_servers=1").json()
        assert ada["groups"] == ["pangeo-data:climate"]
        servers = {name: s["user_options"] for name, s in ada["servers"].items()}
        assert servers == {"": {"profile": "large"}, "run1": {"profile": "small"}}
        tokens = api("ada", "/users/ada/tokens").json()["api_tokens"]
        assert "notebook on my laptop" in [t["note"] for t in tokens]
        mine = api("hedy", "/users/hedy?include_stopped_servers=1").json()
        assert mine["groups"] == ["pangeo-data:oceans"]
        assert mine["servers"][""]["user_options"] == {"profile": "large"}
        # a name JupyterHub 6 would not accept for a new server, kept with its options
        assert mine["servers"]["big_run"]["user_options"] == {"profile": "small"}

        # restarting a server whose profile she may no longer use: refused before any spawn
        response = hub.api(hedy, "post", "/users/hedy/server")
        assert response.status_code == 403, response.text
        assert "You may not use the profile 'large'" in response.json()["message"]
        assert cluster.get("pods", pod_name("hedy")) is None
        assert "Small" in hedy.get(f"{hub.url}/hub/spawn", timeout=10).text
        response = hub.api(hedy, "post", "/users/hedy/server", json={"profile": "small"})
        assert response.status_code in (201, 202), response.text
        hub.wait_for_server(hedy, "hedy")
        container = cluster.get("pods", pod_name("hedy"))["spec"]["containers"][0]
        assert container["image"] == IMAGE
        resources = container["resources"]  # the values' Small profile
        assert resources["limits"] == {"cpu": "1", "memory": str(4 * 1024**3)}
        assert resources["requests"] == {"cpu": "500m", "memory": str(2 * 1024**3)}
        assert cluster.get("persistentvolumeclaims", "claim-hedy") is not None
        response = hub.api(hedy, "delete", "/users/hedy/server")
        assert response.status_code in (202, 204), response.text
        hub.wait_for_stop(hedy, "hedy")
    finally:
        hub.stop()
        hub.gateway.stop()
