"""The hub as a service, as root: units an admin can read (systemd-analyze verify), run by
the tests' supervisor; HTTPS by caddy with a certificate from a real ACME server (pebble)
or the admin's own; restarts on failure; a machine restart that brings everything back."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import requests
import urllib3

from pangeohub.operate.service import verify
from tests.hubprocess import HubProcess, wait_for_http
from tests.isolation_cleanup import hub_id, mounts_under, remove_cgroups

from .admin import admin
from .conftest import DOMAIN, as_person, can_sign_in, https_config, server_model, wait_until
from .docs_commands import doc_command
from .pebble import self_signed
from .supervisor import descendants

pytestmark = pytest.mark.e2e


def https_get(machine, path: str, ca: Path, timeout: float = 10):
    """GET ``path`` over HTTPS from caddy, as a browser reaching DOMAIN would."""
    pool = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        machine.https_port,
        server_hostname=DOMAIN,
        assert_hostname=DOMAIN,
        ca_certs=str(ca),
        cert_reqs="CERT_REQUIRED",
        retries=False,
        timeout=timeout,
    )
    return pool.request("GET", path, headers={"Host": DOMAIN}, redirect=False)


def served_certificate(machine) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", machine.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            return tls.getpeercert(binary_form=True)


def listening(port: int) -> set[str]:
    """The addresses a TCP port listens on (from /proc/net/tcp, tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_units_are_readable_and_pass_systemd_analyze(machine):
    names = sorted(p.name for p in machine.units_dir.iterdir())
    assert names == ["pangeohub-https.service", "pangeohub.service"]
    for path in machine.units_dir.iterdir():
        text = path.read_text()
        assert "Restart=on-failure" in text and "WantedBy=multi-user.target" in text
        assert f"Environment=PANGEOHUB_STATE_DIR={machine.hub.state_dir}" in text
    hub_unit = (machine.units_dir / "pangeohub.service").read_text()
    assert f"ExecStartPre=/bin/rm -f {machine.hub.state_dir}/jupyterhub.pid" in hub_unit
    assert verify(list(machine.units_dir.iterdir())) is None
    broken = machine.workdir / "broken" / "pangeohub.service"
    broken.parent.mkdir(exist_ok=True)
    broken.write_text(hub_unit.replace("ExecStart=/", "ExecStart=/no/such/"))
    assert "is not executable" in verify([broken])


def test_https_with_a_certificate_from_acme_and_http_redirected(machine):
    root = machine.pebble.root()
    response = wait_until(
        lambda: _answer(machine, "/hub/api/", root), timeout=60, what="HTTPS with pebble's cert"
    )
    assert response.status == 200 and "version" in response.json()
    plain = requests.get(
        f"http://127.0.0.1:{machine.http_port}/hub/login",
        headers={"Host": DOMAIN},
        allow_redirects=False,
        timeout=10,
    )
    assert plain.status_code == 308
    assert plain.headers["Location"].startswith(f"https://{DOMAIN}")
    # Only caddy faces the network; the proxy's API and the hub answer on loopback only.
    hub = machine.hub
    for port in (hub.port, hub.hub_port, hub.proxy_api_port):
        assert listening(port) and listening(port) <= {"0100007F"}, port
    stored = list(Path(hub.state_dir, "caddy", "certificates").rglob(f"{DOMAIN}.crt"))
    assert stored, "caddy keeps the certificate in the hub's state directory"
    assert os.stat(hub.state_dir / "caddy").st_mode & 0o077 == 0


def test_a_certificate_near_its_end_is_renewed_from_acme(machine):
    """caddy renews by itself: the stored certificate replaced by one with a day left of
    its ninety (pebble's own last five years, so a renewal cycle cannot be waited for),
    caddy started again, and it serves a new certificate from the ACME server."""
    root = machine.pebble.root()
    wait_until(lambda: _answer(machine, "/hub/api/", root), what="HTTPS with pebble's cert")
    stored = next(Path(machine.hub.state_dir, "caddy", "certificates").rglob(f"{DOMAIN}.crt"))
    ending, ending_pem = _certificate_ending_tomorrow(stored, stored.with_suffix(".key"))
    machine.supervisor.restart("pangeohub-https.service")
    wait_until(lambda: _served_or_none(machine) not in (None, ending), timeout=90, what="a renewal")
    answer = wait_until(lambda: _answer(machine, "/hub/api/", root), what="HTTPS, renewed")
    assert answer.status == 200  # the new certificate is pebble's (verified against its root)
    assert stored.read_bytes() != ending_pem  # and caddy keeps it in the hub's state


def _certificate_ending_tomorrow(cert_path: Path, key_path: Path) -> tuple[bytes, bytes]:
    """Write a certificate for DOMAIN issued 89 days ago and ending tomorrow (and its key)
    over caddy's stored ones; its DER and PEM forms."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=89))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DOMAIN)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert.public_bytes(serialization.Encoding.DER), pem


def _answer(machine, path, root):
    try:
        return https_get(machine, path, root)
    except urllib3.exceptions.HTTPError:
        return None


def test_a_failed_proxy_is_restarted_with_its_routes(machine):
    """The hub's unit restarts the hub (Restart=on-failure, above); the hub restarts its
    proxy and managed services."""
    hub = machine.hub
    pid = int((hub.state_dir / "proxy.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: _pid_file(hub.state_dir / "proxy.pid") not in (None, pid), what="a new proxy"
    )
    assert wait_for_http(f"{hub.url}/hub/api/", 30)
    health = f"{hub.url}/services/scratch/health"
    wait_until(lambda: requests.get(health, timeout=5).status_code != 404, what="routes back")


def test_a_failed_hub_its_service_and_caddy_are_restarted(machine):
    """Restart=on-failure: a killed hub comes back (the supervisor, as systemd, ends what
    it left and starts it again); the hub starts its killed managed service again; a
    killed caddy comes back and serves HTTPS."""
    hub, units = machine.hub, machine.supervisor
    scratch = _process_of(units.unit("pangeohub.service").proc.pid, "pangeohub.scratch.service")
    os.kill(scratch, signal.SIGKILL)
    health = f"{hub.url}/services/scratch/health"
    assert wait_for_http(health, 60), "the scratch service did not start again within 60s"
    assert _process_of(units.unit("pangeohub.service").proc.pid, "pangeohub.scratch.service")
    for name in ("pangeohub.service", "pangeohub-https.service"):
        unit = units.unit(name)
        starts, pid = unit.starts, unit.proc.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda u=unit, s=starts: u.starts > s, what=f"{name} started again")
    assert wait_for_http(f"{hub.url}/hub/api/", 60)
    assert wait_for_http(health, 60), "the scratch service did not start with the new hub"
    root = machine.pebble.root()
    answer = wait_until(lambda: _answer(machine, "/hub/api/", root), what="HTTPS again")
    assert answer.status == 200


def _process_of(top: int, module: str) -> int | None:
    """The process below ``top`` running ``python -m module``."""
    for pid in descendants(top):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if module.encode() in argv:
            return pid
    return None


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def test_the_admins_own_certificate(machine):
    # kept with the machine: caddy reads them again at every start (a restart below)
    cert, key = self_signed(machine.workdir, "own", [DOMAIN])
    hub = machine.hub
    hub.extra_config = https_config(
        machine.pebble,
        machine.http_port,
        machine.https_port,
        f"c.HTTPS.certificate = {str(cert)!r}\nc.HTTPS.key = {str(key)!r}",
    )
    hub.prepare()  # the admin edits their file, then restarts the HTTPS service
    machine.supervisor.restart("pangeohub-https.service")
    own = ssl.PEM_cert_to_DER_cert(cert.read_text())
    wait_until(lambda: _served_or_none(machine) == own, what="caddy serving the admin's cert")
    assert https_get(machine, "/hub/api/", cert).status == 200


def _served_or_none(machine):
    try:
        return served_certificate(machine)
    except OSError:
        return None


def test_a_machine_restart_brings_the_hub_and_everyones_files_back(machine):
    """And what admins changed holds: groups set on the admin API (the configuration's
    first groups are not given again) decide the next start's profiles, and the password
    root set from the shell while the machine was down is ada's."""
    hub = machine.hub
    grace, ada = hub.login("grace"), hub.login("ada")
    climate, oceans = "/groups/pangeo-data:climate/users", "/groups/pangeo-data:oceans/users"
    assert hub.api(ada, "delete", climate, json={"users": ["grace"]}).status_code == 200
    assert hub.api(ada, "post", oceans, json={"users": ["grace"]}).status_code == 200
    set_password = doc_command("accounts.md", "set-password")  # ada's, as the docs show
    refused = admin(hub, *set_password)
    assert refused.returncode == 1 and "stop it first" in refused.stderr
    assert hub.api(grace, "post", "/users/grace/servers/thesis", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "thesis", timeout=90)
    token = hub.api(grace, "post", "/users/grace/tokens", json={}).json()["token"]
    headers = {"Authorization": f"token {token}"}
    contents = f"{hub.url}/user/grace/thesis/api/contents/chapter1.txt"
    put = requests.put(
        contents,
        json={"type": "file", "format": "text", "content": "It was a dark night."},
        headers=headers,
        timeout=30,
    )
    assert put.status_code in (200, 201), put.text
    scratch = requests.get(f"{hub.url}/services/scratch/credentials", headers=headers, timeout=30)
    assert scratch.status_code == 200, scratch.text
    scratch_dir = Path(scratch.json()["url"].removeprefix("file://"))
    as_person(machine.account("grace"), f"echo results > {scratch_dir}/run.csv")
    image = hub.state_dir / "disks" / machine.account("grace") / "thesis.img"
    assert image.exists()
    shared = Path("/srv/pangeohub") / machine.homes.parent.name / "shared"
    (shared / "README.txt").write_text("Data for everyone.\n")  # the admin, as root

    # The machine restarts: every process dies, mounts and cgroups are gone.
    machine.supervisor.power_off()
    hub.kill_leftover_servers()
    remove_cgroups(f"pangeohub/{machine.homes.parent.name}")
    hub_tree = machine.homes.parent  # homes, their disks, scratch and its disks
    for point in sorted(mounts_under(hub_tree), key=lambda p: p.count("/"), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    assert not mounts_under(hub_tree)
    # After a restart the proxy's old pid is another program's (here: one of the test's).
    bystander = subprocess.Popen(["sleep", "600"])
    (hub.state_dir / "proxy.pid").write_text(str(bystander.pid))
    reset = admin(hub, *set_password)
    assert reset.returncode == 0, reset.stderr
    machine.boot()

    assert bystander.poll() is None, "the hub killed the process a stale pid file named"
    bystander.kill()
    ada_password = reset.stdout.strip().rsplit(": ", 1)[1]
    assert hub.login("ada", ada_password) and not can_sign_in(hub, "ada", hub.password("ada"))
    grace = hub.login("grace")
    groups = hub.api(grace, "get", "/users/grace").json()["groups"]
    assert groups == ["pangeo-data:oceans"]
    large = hub.api(grace, "post", "/users/grace/servers/thesis", json={"profile": "large"})
    assert large.status_code == 403, large.text
    wait_until(lambda: server_model(hub, grace, "grace", "thesis")["stopped"], what="shown stopped")
    assert hub.api(grace, "post", "/users/grace/servers/thesis", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "thesis", timeout=90)
    token = hub.api(grace, "post", "/users/grace/tokens", json={}).json()["token"]
    again = requests.get(contents, headers={"Authorization": f"token {token}"}, timeout=30)
    assert again.status_code == 200 and again.json()["content"] == "It was a dark night."
    assert os.path.ismount(scratch_dir), "grace's scratch disk is mounted again"
    assert (scratch_dir / "run.csv").read_text() == "results\n"
    assert (shared / "README.txt").read_text() == "Data for everyone.\n"
    # caddy is back: serving its certificate (the admin's own, since the test above)
    wait_until(lambda: _served_or_none(machine), what="HTTPS after boot")


def test_a_backup_restores_into_a_second_state_directory(machine, tmp_path_factory):
    """Taken while grace's server runs (its disk frozen while copied), restored into a
    new state directory: same users, groups, servers (stopped), files, secrets; sign-in
    cookies and tokens keep working."""
    hub = machine.hub
    grace = hub.login("grace")
    assert server_model(hub, grace, "grace", "thesis")["ready"]
    token = hub.api(grace, "post", "/users/grace/tokens", json={}).json()["token"]
    scratch_dir = Path(
        requests.get(
            f"{hub.url}/services/scratch/credentials",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        .json()["url"]
        .removeprefix("file://")
    )
    # grace's own code leaves a link to the hub's secrets in her scratch space.
    as_person(machine.account("grace"), f"ln -s {hub.state_dir} {scratch_dir}/secrets")

    backups = tmp_path_factory.mktemp("backups")
    moved = {"/var/backups/pangeohub": str(backups)}
    made = admin(hub, *doc_command("backups.md", "backup", moved))  # as docs/operate shows
    destination = backups / "monday"
    assert made.returncode == 0, made.stderr
    assert "thesis.img (frozen while copied)" in made.stdout
    manifest = json.loads((destination / "manifest.json").read_text())
    assert manifest["database"] == "sqlite"
    image = destination / "disks" / machine.account("grace") / "thesis.img"
    original = hub.state_dir / "disks" / machine.account("grace") / "thesis.img"
    assert image.stat().st_size == original.stat().st_size
    assert image.stat().st_blocks * 512 < image.stat().st_size / 4, "holes were filled"
    assert stat.S_IMODE(destination.stat().st_mode) == 0o700
    assert stat.S_IMODE((destination / "state.tar").stat().st_mode) == 0o600
    with tarfile.open(destination / "state.tar") as tar:  # 10G sparse files, as zeros
        assert not [m for m in tar.getnames() if m.endswith(".img")], "images in state.tar"
    taken = sum(f.stat().st_blocks * 512 for f in destination.rglob("*") if f.is_file())
    assert taken < 200 * 2**20, f"the backup takes {taken / 2**20:.0f} MiB"
    with tarfile.open(destination / "scratch.tar") as tar:
        link = tar.getmember("scratch/grace/secrets")
        assert link.issym() and link.linkname == str(hub.state_dir)
        assert not [m for m in tar.getnames() if "cookie_secret" in m]

    restored = HubProcess(tmp_path_factory.mktemp("restored"))
    restored.extra_config = "c.Authenticator.auth_refresh_age = 3600"
    back = admin(restored, *doc_command("backups.md", "restore", moved))
    assert back.returncode == 0, back.stderr
    try:
        restored.start()
        for secret in ("cookie_secret", "crypt_key", "proxy_auth_token"):
            assert (restored.state_dir / secret).read_bytes() == (
                hub.state_dir / secret
            ).read_bytes()
        # The same cookie and token, now against the restored hub.
        assert restored.api(grace, "get", "/users/grace").status_code == 200
        me = requests.get(
            f"{restored.url}/hub/api/user",
            headers={"Authorization": f"token {token}"},
            timeout=10,
        )
        assert me.status_code == 200 and "pangeo-data:oceans" in me.json()["groups"]
        grace_again = restored.login("grace", hub.password("grace"))
        assert server_model(restored, grace_again, "grace", "thesis")["stopped"]
        # Her server starts on the restored hub, from its restored disk.
        started = restored.api(grace_again, "post", "/users/grace/servers/thesis", json={})
        assert started.status_code in (201, 202), started.text
        restored.wait_for_server(grace_again, "grace", "thesis", timeout=90)
        again = restored.api(grace_again, "post", "/users/grace/tokens", json={}).json()
        chapter = requests.get(
            f"{restored.url}/user/grace/thesis/api/contents/chapter1.txt",
            headers={"Authorization": f"token {again['token']}"},
            timeout=30,
        )
        assert chapter.status_code == 200 and chapter.json()["content"].startswith("It was")
        assert (restored.scratch_root / "grace" / "run.csv").read_text() == "results\n"
        assert (restored.scratch_root / "grace" / "secrets").is_symlink()
        new_shared = Path("/srv/pangeohub") / hub_id(restored.state_dir) / "shared"
        assert (new_shared / "README.txt").read_text() == "Data for everyone.\n"
    finally:
        restored.stop()
