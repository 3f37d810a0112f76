"""Inside a server on Kubernetes: the shared data volume (readOnly unless the person is in
a writer group), the Lab's settings in the pod's environment, and the picker's previous
choice; the real KubeSpawner builds the pod manifest (nothing is started)."""

from __future__ import annotations

from .conftest import make_user

SHARED = {
    "SharedData__kubernetes_volume": {"nfs": {"server": "10.0.0.2", "path": "/shared"}},
    "SharedData__writer_groups": ["pangeo-data:hub-admins"],
}


def mount_of(pod, name="pangeo-shared"):
    mounts = pod.spec.containers[0].volume_mounts
    return next(m for m in mounts if m.name == name)


async def test_pods_mount_the_shared_volume_read_only_but_writers(make_spawner):
    reader = make_spawner(make_user("alice"), options={"profile": "small"}, **SHARED)
    await reader.load_user_options()
    pod = await reader.get_pod_manifest()
    assert [v.name for v in pod.spec.volumes] == ["home", "pangeo-shared"]
    assert mount_of(pod).read_only is True and mount_of(pod).mount_path == "/home/jovyan/shared"
    env = reader.get_env()
    assert env["PANGEO_SHARED_DIR"] == "/home/jovyan/shared"
    assert env["DASK_LABEXTENSION__USE_GATEWAY"] == "True"
    await reader.load_user_options()  # a second start adds no second volume
    assert [v["name"] for v in reader.volumes] == ["home", "pangeo-shared"]

    writer = make_spawner(make_user("dave", ["pangeo-data:hub-admins"]), **SHARED)
    await writer.load_user_options()
    assert mount_of(await writer.get_pod_manifest()).read_only is False


async def test_shared_volume_joins_volumes_given_by_name_as_zero_to_jupyterhub_does(
    make_spawner,
):
    spawner = make_spawner(
        make_user("alice"),
        KubeSpawner__volumes={"home": {"name": "home", "emptyDir": {}}},
        KubeSpawner__volume_mounts={"home": {"name": "home", "mountPath": "/home/jovyan"}},
        **SHARED,
    )
    await spawner.load_user_options()
    assert sorted(spawner.volumes) == ["home", "pangeo-shared"]
    assert mount_of(await spawner.get_pod_manifest()).read_only is True


async def test_no_shared_volume_unless_the_admin_sets_one(make_spawner):
    spawner = make_spawner(make_user("alice"))
    await spawner.load_user_options()
    assert [v["name"] for v in spawner.volumes] == ["home"]
    assert "PANGEO_SHARED_DIR" not in spawner.get_env()


async def test_picker_pre_selects_the_servers_previous_profile(make_spawner):
    bob = make_user("bob", ["pangeo-data:climate"])
    spawner = make_spawner(bob, name="run2", options={"profile": "large"})
    entries = spawner.kube_profile_list()
    assert [e["slug"] for e in entries if e["default"]] == ["large"]
    assert "CPU" in entries[0]["description"] and "image" in entries[0]["description"]
