"""PangeoKubeSpawner with the real KubeSpawner against the fake Kubernetes API."""

from __future__ import annotations

import json
import pathlib

import pytest
import requests
from tornado import web

from .conftest import NAMESPACE, make_user


def env_of(fake, pvc: str) -> dict:
    """The environment the pod's process recorded in its claim."""
    path = pathlib.Path(fake.root, "volumes", NAMESPACE, pvc, "env.json")
    return json.loads(fake.wait_for(lambda: path.exists() and path.read_text(), what="env.json"))


def http_get(url: str) -> int:
    for _ in range(50):
        try:
            return requests.get(url, timeout=2).status_code
        except requests.ConnectionError:
            import time

            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


async def test_start_poll_stop_keeps_claim_delete_removes_it(fake, make_spawner):
    user = make_user("alice")
    hook = lambda spawner: {"PANGEO_SCRATCH": f"s3://scratch/{spawner.user.name}"}  # noqa: E731
    spawner = make_spawner(user, PangeoSpawnerMixin__environment_hooks=[hook])
    url = await spawner.start()
    assert url.startswith("http://127.0.") and url.endswith(":8888")
    assert http_get(url) == 200
    assert await spawner.poll() is None

    pod = fake.get("pods", spawner.pod_name)
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "1", "memory": str(2 * 1024**3)}
    claim = fake.get("persistentvolumeclaims", "claim-alice")
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    env = env_of(fake, "claim-alice")
    assert env["JUPYTER_IMAGE_SPEC"] == "pangeo/base-notebook:2024.01.01"
    assert env["PANGEO_PROFILE"] == "small"
    assert env["PANGEO_SCRATCH"] == "s3://scratch/alice"
    assert env["CPU_LIMIT"] == "1.0"

    await spawner.stop()
    assert fake.get("pods", spawner.pod_name) is None
    assert await spawner.poll() == 1
    assert fake.get("persistentvolumeclaims", "claim-alice") is not None, "stop keeps the claim"
    assert fake.processes() == []

    await spawner.delete_forever()
    fake.wait_for(lambda: fake.get("persistentvolumeclaims", "claim-alice") is None, 10)


async def test_profiles_filtered_by_group_on_render(make_spawner):
    alice = make_spawner(make_user("alice"))
    bob = make_spawner(make_user("bob", ["pangeo-data:climate"]))
    assert [p["slug"] for p in alice.kube_profile_list()] == ["small", "broken", "huge"]
    assert "large" in [p["slug"] for p in bob.kube_profile_list()]
    form = await alice.options_form(alice)
    assert "Small" in form and "Large" not in form
    assert "Large" in await bob.options_form(bob)


@pytest.mark.parametrize(
    "options, status, words",
    [
        ({"profile": "large"}, 403, "You may not use the profile 'large'"),
        ({"profile": "gpu"}, 400, "There is no profile 'gpu'"),
        ({"profile": "small", "image": "nope"}, 400, "There is no Image choice 'nope'"),
        ({"profile": "small", "image--unlisted-choice": "evil/miner:1"}, 403, "is not allowed"),
        # as the spawn page's picker posts it: the select's "unlisted_choice" and the value
        (
            {"profile": "small", "image": "unlisted_choice", "image--unlisted-choice": "evil/m:1"},
            403,
            "The Image 'evil/m:1' is not allowed on this hub",
        ),
        ({"profile": "small", "image": "unlisted_choice"}, 400, "Enter the Other image"),
    ],
)
async def test_forged_options_refused_with_4xx(fake, make_spawner, options, status, words):
    spawner = make_spawner(make_user("alice"), options=options, **IMAGE_CHOICES)
    with pytest.raises(web.HTTPError) as info:
        await spawner.start()
    assert info.value.status_code == status
    assert words in info.value.jupyterhub_message
    assert fake.list("pods", NAMESPACE) == []
    slug = options["profile"]
    form = {"profile": [slug]}
    form.update({f"profile-option-{slug}--{k}": [v] for k, v in options.items() if k != "profile"})
    with pytest.raises(web.HTTPError) as info:  # the spawn form refuses it too
        spawner.run_options_from_form(form)  # as JupyterHub calls it
    assert info.value.status_code == status


IMAGE_CHOICES = {
    "PangeoKubeSpawner__profile_options": {
        "small": {
            "image": {
                "display_name": "Image",
                "choices": {
                    "base": {
                        "display_name": "Base",
                        "kubespawner_override": {"image": "pangeo/base-notebook:2024.01.01"},
                    },
                    "ml": {
                        "display_name": "ML",
                        "kubespawner_override": {"image": "pangeo/ml-notebook:2024.01.01"},
                    },
                },
                "unlisted_choice": {
                    "enabled": True,
                    "display_name": "Other image",
                    "kubespawner_override": {"image": "{value}"},
                },
            }
        }
    },
    "PangeoKubeSpawner__unlisted_choice_pattern": r"pangeo/[a-z-]+:[0-9.]+",
}


async def test_choices_and_allowed_unlisted_image(make_spawner):
    spawner = make_spawner(
        make_user("alice"), options={"profile": "small", "image": "ml"}, **IMAGE_CHOICES
    )
    await spawner.load_user_options()
    assert spawner.image == "pangeo/ml-notebook:2024.01.01"
    assert spawner.get_env()["JUPYTER_IMAGE_SPEC"] == spawner.image
    assert spawner.profile.image == spawner.image, "the Dask workers run the chosen image too"
    custom = {"profile": "small", "image--unlisted-choice": "pangeo/pangeo-notebook:2024.01.01"}
    for options in (custom, {**custom, "image": "unlisted_choice"}):  # the API's, the form's
        spawner = make_spawner(make_user("alice"), options=options, **IMAGE_CHOICES)
        await spawner.load_user_options()
        assert spawner.image == "pangeo/pangeo-notebook:2024.01.01"
    # fancy-profiles' picker (on under the base URL "/"): the spawner adds its template
    form = await spawner.options_form(spawner)
    assert "window.profileList" in form and '"profile-option-small--image"' not in form
    plain = make_spawner(make_user("alice"), ProfilePicker__fancy=False, **IMAGE_CHOICES)
    assert 'name="profile-option-small--image"' in await plain.options_form(plain)


async def test_an_admins_options_from_form_is_honoured_and_its_result_checked(make_spawner):
    def from_form(form_data, spawner):
        return {"profile": "small", "image": form_data["flavour"][0]}

    spawner = make_spawner(
        make_user("alice"), Spawner__options_from_form=from_form, **IMAGE_CHOICES
    )
    assert spawner.run_options_from_form({"flavour": ["ml"]}) == {"profile": "small", "image": "ml"}
    with pytest.raises(web.HTTPError) as refused:
        spawner.run_options_from_form({"flavour": ["nope"]})
    assert refused.value.status_code == 400
    simple = make_spawner(make_user("alice"), Spawner__options_from_form="simple")
    assert simple.run_options_from_form({"profile": ["small"]}) == {"profile": "small"}
    default = make_spawner(make_user("alice"), **IMAGE_CHOICES)  # KubeSpawner's own reading
    form = {"profile": ["small"], "profile-option-small--image": ["ml"]}
    assert default.run_options_from_form(form) == {"profile": "small", "image": "ml"}


async def test_named_servers_get_own_claims_and_profile_resources(fake, make_spawner):
    bob = make_user("bob", ["pangeo-data:climate"])
    default = make_spawner(bob)
    named = make_spawner(bob, name="run2", options={"profile": "large"})
    await default.start()
    await named.start()
    assert (default.pvc_name, named.pvc_name) == ("claim-bob", "claim-bob--run2")
    claim = fake.get("persistentvolumeclaims", "claim-bob--run2")
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    container = fake.get("pods", named.pod_name)["spec"]["containers"][0]
    assert container["image"] == "pangeo/ml-notebook:2024.01.01"
    assert container["resources"]["limits"]["cpu"] == "4"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": str(8 * 1024**3)}
    mounts = {v["name"]: v for v in fake.get("pods", named.pod_name)["spec"]["volumes"]}
    assert mounts["home"]["persistentVolumeClaim"]["claimName"] == "claim-bob--run2"
    await named.stop()
    await named.delete_forever()
    fake.wait_for(lambda: fake.get("persistentvolumeclaims", "claim-bob--run2") is None, 10)
    assert fake.get("persistentvolumeclaims", "claim-bob") is not None, "never shared"
    await default.stop()


async def test_hub_restart_finds_running_pod(fake, make_spawner):
    from pangeohub.spawner.kubernetes import PangeoKubeSpawner

    user = make_user("carol")
    spawner = make_spawner(user)
    url = await spawner.start()
    state = spawner.get_state()
    await PangeoKubeSpawner._stop_all_reflectors()  # the hub process goes away; the pod does not

    again = make_spawner(user)
    again.load_state(state)
    assert await again.poll() is None
    assert http_get(url) == 200
    await again.stop()
    assert await again.poll() == 1
    await again.delete_forever()


async def test_claim_under_old_name_scheme_is_used(fake, make_spawner):
    labels = {"hub.jupyter.org/username": "dave", "component": "singleuser-storage"}
    old = {
        "metadata": {
            "name": "claim-daveproj",
            "labels": labels,
            "annotations": {"hub.jupyter.org/servername": "proj"},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    fake.create("persistentvolumeclaims", old)
    stranger = {
        "metadata": {"name": "claim-daveother"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    fake.create("persistentvolumeclaims", stranger)
    dave = make_user("dave")
    spawner = make_spawner(dave, name="proj")
    await spawner.start()
    assert spawner.pvc_name == "claim-daveproj"
    assert fake.get("persistentvolumeclaims", "claim-dave--proj") is None
    assert spawner.get_state()["pvc_name"] == "claim-daveproj"
    other = make_spawner(dave, name="other")
    await other.start()
    assert other.pvc_name == "claim-dave--other", "an unlabelled claim is not taken"
    for s in (spawner, other):
        await s.stop()
        await s.delete_forever()
    fake.delete("persistentvolumeclaims", "claim-daveother")


async def test_manifests_validate_against_kubernetes_schema(make_spawner):
    import kubernetes_validate
    from kubernetes_asyncio.client import ApiClient

    spawner = make_spawner(make_user("erin", ["pangeo-data:climate"]), options={"profile": "large"})
    await spawner.load_user_options()
    serialize = ApiClient().sanitize_for_serialization
    for manifest in (await spawner.get_pod_manifest(), spawner.get_pvc_manifest()):
        kubernetes_validate.validate(serialize(manifest), "1.31", strict=True)


def test_a_shared_claim_template_is_refused(make_spawner):
    with pytest.raises(ValueError, match="must contain {user_server}"):
        make_spawner(make_user("alice"), KubeSpawner__pvc_name_template="claim-{username}")
