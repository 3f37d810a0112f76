"""The deployment files: RBAC manifests validate, the values configure pangeohub's spawner."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml
from traitlets.config import Config

from pangeohub.policy import PangeoPolicy

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def values_config() -> Config:
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    return Config(values["hub"]["config"]), values


def test_rbac_manifests_validate():
    docs = list(yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.31", strict=True)
    rules = {r["resources"][0]: set(r["verbs"]) for r in docs[1]["rules"]}
    assert {"create", "delete", "watch"} <= rules["pods"]
    assert {"create", "delete", "get"} <= rules["persistentvolumeclaims"]


def test_values_select_pangeohub_and_one_claim_per_server():
    config, values = values_config()
    assert config.JupyterHub.spawner_class == "pangeo-kubernetes"
    storage = values["singleuser"]["storage"]
    assert "{user_server}" in storage["dynamic"]["pvcNameTemplate"]
    profiles = PangeoPolicy(config=config).all_profiles()  # within the bounds
    slugs = {p.slug for p in profiles}
    assert set(config.PangeoKubeSpawner.profile_options) <= slugs


def test_docs_show_the_gateway_values_the_tests_run():
    page = (DEPLOY.parent / "docs" / "dask-gateway.md").read_text()
    assert "```{literalinclude} ../deploy/dask-gateway-values.yaml" in page
