"""The environments' settings (``c.Environments``): what each one holds, where and how built."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from traitlets import Bool, Dict, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from ..isolation import Isolation
from ..numbers import FiniteFloat
from ..state import StateDirectory
from .machine import uv_executable

HERE = Path(__file__).resolve().parent
PANGEO_LOCK = str(HERE / "pangeo" / "requirements.txt")
SWITCH_ENV = "PANGEOHUB_ENVIRONMENTS"  # "off": servers run the hub's own Python
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def base_python() -> str:
    """The interpreter the hub's own virtual environment was made from (every account
    can run it when ``make setup`` made the hub's environment as root)."""
    return getattr(sys, "_base_executable", "") or sys.executable


class Environments(LoggingConfigurable):
    """The software environments servers run in on one machine (``c.Environments``).

    Each profile names one (its ``environment``; on Kubernetes its ``image`` instead).
    An environment is a virtual environment built with uv from requirements the admin
    owns, sealed read-only and versioned by its content.
    """

    enabled = Bool(
        help="""Run each server, and its Dask workers, in its profile's environment (one
        machine). Off: servers run the hub's own Python and packages, as in development
        (a person's installs can then reach the hub's packages). Default: on, unless
        $PANGEOHUB_ENVIRONMENTS is "off".""",
    ).tag(config=True)

    @default("enabled")
    def _default_enabled(self):
        return os.environ.get(SWITCH_ENV, "").lower() != "off"

    environments = Dict(
        value_trait=Dict(),
        help="""The environments, by name: each a dict with ``requirements`` (a list of
        requirements files, absolute paths, installed together; a lock file made with
        ``uv pip compile`` keeps builds repeatable) and an optional ``description``
        (shown in the picker and on the environments page). Packages the admin adds with
        ``pangeohub-environments add`` are installed on top. The bundle's ``pangeo``
        environment is the Python part of the pangeo-notebook image.""",
    ).tag(config=True)

    @default("environments")
    def _default_environments(self):
        return {
            "pangeo": {
                "requirements": [PANGEO_LOCK],
                "description": "The Pangeo stack: xarray, Dask, zarr, netCDF, intake, "
                "cartopy, hvplot and more (the pangeo-notebook image's Python packages).",
            }
        }

    @validate("environments")
    def _check_names(self, proposal):
        for name, spec in proposal["value"].items():
            if not name or set(name) - _NAME_CHARS or len(name) > 40:
                raise ValueError(
                    f"Environment name {name!r}: use up to 40 lowercase letters, digits "
                    "and hyphens."
                )
            unknown = set(spec) - {"requirements", "description"}
            if unknown:
                raise ValueError(
                    f"Environment {name!r} has unknown keys: {', '.join(sorted(unknown))}."
                )
            for path in spec.get("requirements") or []:
                if not isinstance(path, str) or not os.path.isabs(path):
                    raise ValueError(
                        f"Environment {name!r}: requirements files must be absolute paths, "
                        f"not {path!r}."
                    )
        return proposal["value"]

    default_environment = Unicode(
        "pangeo",
        help="The environment of a profile that names none.",
    ).tag(config=True)

    server_packages = List(
        Unicode(),
        help="""What every environment gets besides its requirements: the parts a server
        and its Dask workers run (ipywidgets: the widget ``GatewayCluster()`` shows).
        ``jupyterhub`` is always kept at the hub's own version (jupyterhub-singleuser must
        match the hub), and pangeohub's server-side parts (activity and Lab extensions,
        the scratch credential helper) are installed from the hub's own copy.""",
    ).tag(config=True)

    @default("server_packages")
    def _default_server_packages(self):
        return [
            "jupyterlab",
            "ipykernel",
            "ipywidgets",
            "pip",
            "dask-gateway",
            "dask-labextension",
            "dask-labextension-gateway",
            "jupyter-resource-usage",
        ]

    excluded_packages = List(
        Unicode(),
        ["rfc3987-syntax"],
        help="""Packages no environment installs, even when a requirement pulls them in
        (an override that never matches). Default: jsonschema's optional IRI checker
        (pulled in by jupyter_events), which builds a grammar at import: over a second of
        every server start, for a check no server makes.""",
    ).tag(config=True)

    constraints = List(
        Unicode(),
        help="Constraints files (``--constraint``) every build honours, e.g. to hold a version.",
    ).tag(config=True)

    root = Unicode(
        help="""Directory of the built environments, one directory per environment and
        one per version inside it. It must be readable by every person's account.
        Default: as root /srv/pangeohub/<hub id>/environments, else
        <state dir>/environments.""",
    ).tag(config=True)

    @default("root")
    def _default_root(self):
        isolation = Isolation(parent=self)
        if isolation.active:
            return f"/srv/pangeohub/{isolation.hub_id}/environments"
        return str(StateDirectory.from_env().path / "environments")

    added_dir = Unicode(
        help="""Directory of the packages the admin added (``pangeohub-environments add``),
        one requirements file per environment (``<name>.txt``). Default: <state
        dir>/environments-added.""",
    ).tag(config=True)

    @default("added_dir")
    def _default_added_dir(self):
        return str(StateDirectory.from_env().path / "environments-added")

    python = Unicode(
        help="""The Python environments are made on. Default: the one the hub's own
        virtual environment was made from (as root, one every account can run).""",
    ).tag(config=True)

    @default("python")
    def _default_python(self):
        return base_python()

    uv = Unicode(help="The uv executable. Default: the one installed with pangeohub.").tag(
        config=True
    )

    @default("uv")
    def _default_uv(self):
        return uv_executable()

    cache_dir = Unicode(
        "",
        help="""uv's package cache for builds (a rebuild after adding a package downloads
        only what is new). Empty: uv's own default (``UV_CACHE_DIR``, else the hub
        account's ~/.cache/uv).""",
    ).tag(config=True)

    index_url = Unicode(
        "",
        help="""Package index builds install from. Empty: the machine's (uv.toml,
        ``UV_DEFAULT_INDEX``, else pip.conf's ``index-url`` or ``PIP_INDEX_URL``), else
        uv's default.""",
    ).tag(config=True)

    find_links = List(
        Unicode(), help="Directories or pages of wheels builds also install from."
    ).tag(config=True)

    offline = Bool(False, help="Install only from ``find_links`` and uv's cache.").tag(config=True)

    system_certs = Bool(
        True,
        help="""Verify package indexes with the machine's trust store (uv's
        ``--system-certs``), as pip does: a campus or company proxy with its own
        certificate authority works once the machine trusts it. Off: uv's bundled Mozilla
        roots. The one switch for launch links' builds (``c.BinderBuilder``) too.""",
    ).tag(config=True)

    compile_bytecode = Bool(
        True,
        help="""Compile every module to bytecode as the environment is built (uv's
        ``--compile-bytecode``). A sealed environment cannot cache bytecode later, so
        without it each server start compiles what it imports again (seconds more per
        start, for the full Pangeo stack about 10); with it a build takes longer (about 40
        s more for the full stack on 2 cores).""",
    ).tag(config=True)

    build_timeout = FiniteFloat(
        3600, min=1, help="Seconds one environment's build may take before it is stopped."
    ).tag(config=True)

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def names(self) -> list[str]:
        return list(self.environments)

    def environment_of(self, profile) -> str:
        """The environment a profile runs in (its own, else the default)."""
        return getattr(profile, "environment", "") or self.default_environment

    def check(self, profiles) -> None:
        """Every profile's environment is declared (ValueError otherwise)."""
        for profile in profiles:
            name = self.environment_of(profile)
            if name not in self.environments:
                known = ", ".join(sorted(self.environments)) or "none"
                raise ValueError(
                    f"Profile {profile.display_name!r} runs in the environment {name!r}, "
                    f"which c.Environments.environments does not declare (declared: {known})."
                )
