"""Server policies: pure rules, no I/O.

Profiles and who may use them, the named-server limit, the server-name rule and
resource bounds. Every rule reads JupyterHub group names (``org:team``), never
GitHub directly, so the same rule holds with any authenticator. Every refusal is a
:class:`PolicyError` carrying an HTTP status and a message a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from jupyterhub.slugs import is_valid_safe_slug
from traitlets import All, Dict, Int, List, Unicode, Union, default, observe, validate
from traitlets.config import Configurable

from .kube_sections import chart_default
from .numbers import FiniteFloat, finite

_BYTE_UNITS = {
    "": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "KI": 1024,
    "MI": 1024**2,
    "GI": 1024**3,
    "TI": 1024**4,
}
_BYTES_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$", re.IGNORECASE)


class PolicyError(Exception):
    """A refusal a person sees: an HTTP status (4xx) and an actionable message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_bytes(value: int | float | str) -> int:
    """Bytes from ``2G``, ``2Gi``, ``512M`` or a number (K/M/G/T count in 1024s,
    as JupyterHub's ``mem_limit`` does).

    Not ``jupyterhub.traitlets.ByteSpecification``: profiles are dicts, not traits, their
    disk sizes are written the Kubernetes way (``10Gi``), which it refuses, and it takes
    ``nanG``; the numbers it gives are the same."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; write it like 2G, 512M or 2Gi.")
    if isinstance(value, int | float):
        return int(finite("A size", value))
    match = _BYTES_PATTERN.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size; write it like 2G, 512M or 2Gi.")
    number, unit = match.groups()
    return int(float(number) * _BYTE_UNITS[(unit or "").upper()])


def format_bytes(value: int) -> str:
    """A size the way people read it: ``2 GiB``, ``512 MiB``."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value} bytes"


@dataclass(frozen=True)
class Profile:
    """One hardware/image choice an admin declares."""

    slug: str
    display_name: str
    description: str = ""
    cpu_limit: float = 1.0
    mem_limit: int = 2 * 1024**3
    cpu_guarantee: float | None = None
    mem_guarantee: int | None = None
    image: str = ""
    environment: str = ""
    disk_size: int = 2 * 1024**3
    default: bool = False
    groups: frozenset[str] = frozenset()
    kubespawner_override: dict = field(default_factory=dict, hash=False, compare=False)

    def allows(self, groups: Iterable[str]) -> bool:
        """Whether a member of ``groups`` may use this profile."""
        return not self.groups or not self.groups.isdisjoint(g.lower() for g in groups)

    def summary(self) -> str:
        """A one-line description of the resources, for the picker."""
        memory, disk = format_bytes(self.mem_limit), format_bytes(self.disk_size)
        return f"{self.cpu_limit:g} CPU, {memory} memory, {disk} disk"


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "profile"


class PangeoPolicy(Configurable):
    """The hub's server policies, set in ``c.PangeoPolicy``."""

    profiles = List(
        Dict(),
        help="""Hardware/image profiles users choose from.

        Each is a dict with ``display_name`` (required), and optionally ``slug``,
        ``description``, ``cpu_limit``, ``mem_limit`` (e.g. "4G"), ``cpu_guarantee``,
        ``mem_guarantee``, ``image`` (Kubernetes), ``environment`` (one machine: a name
        in ``c.Environments.environments``; empty: its default), ``disk_size`` (e.g.
        "10Gi"), ``default`` (bool),
        ``groups`` (JupyterHub groups such as "org:team" that may use it; empty or
        missing means everyone) and ``kubespawner_override`` (extra KubeSpawner
        settings, Kubernetes only). Unset resources take the ``default_*`` settings.
        With no profiles, everyone gets one profile made of the defaults.
        """,
    ).tag(config=True)

    default_cpu_limit = FiniteFloat(
        1.0,
        min=0.001,
        help="""CPU limit of a profile that sets none (cores). On Kubernetes, unset: the
        chart's ``singleuser.cpu.limit`` (``c.KubeSpawner.cpu_limit``) if it has one.""",
    ).tag(config=True)
    default_mem_limit = Union(
        [Unicode(), Int()],
        default_value="2G",
        help="""Memory limit of a profile that sets none (e.g. 2G). On Kubernetes, unset:
        the chart's ``singleuser.memory.limit`` (``c.KubeSpawner.mem_limit``) if it has one.""",
    ).tag(config=True)
    default_disk_size = Union(
        [Unicode(), Int()],
        default_value="2Gi",
        help="""Disk per server of a profile that sets none (e.g. 2Gi). On Kubernetes,
        unset: the chart's ``singleuser.storage.capacity`` (``c.KubeSpawner.storage_capacity``)
        if it has one.""",
    ).tag(config=True)
    default_image = Unicode(
        "pangeo/pangeo-notebook:latest",
        help="""Image of a profile that sets none (recorded as JUPYTER_IMAGE_SPEC). On
        Kubernetes, unset: the chart's ``singleuser.image`` (``c.KubeSpawner.image``).""",
    ).tag(config=True)

    # The chart's values as the defaults (read, never copied into c.PangeoPolicy); one the
    # admin also set must agree with it (pangeohub.spawner.chart_settings, at start-up).
    @default("default_cpu_limit")
    def _chart_cpu_limit(self):
        return self._chart_or_own("default_cpu_limit")

    @default("default_mem_limit")
    def _chart_mem_limit(self):
        return self._chart_or_own("default_mem_limit")

    @default("default_disk_size")
    def _chart_disk_size(self):
        return self._chart_or_own("default_disk_size")

    @default("default_image")
    def _chart_image(self):
        return self._chart_or_own("default_image")

    def _chart_or_own(self, name: str):
        value = chart_default(self.config, name)
        return self.traits()[name].default_value if value is None else value

    max_cpu_limit = FiniteFloat(
        16.0,
        min=0.001,
        help="No profile may set a CPU limit above this; the hub refuses to start otherwise.",
    ).tag(config=True)
    max_mem_limit = Union(
        [Unicode(), Int()],
        default_value="64G",
        help="No profile may set a memory limit above this (e.g. 64G).",
    ).tag(config=True)
    max_disk_size = Union(
        [Unicode(), Int()],
        default_value="100Gi",
        help="No profile may set a disk size above this (e.g. 100Gi).",
    ).tag(config=True)

    named_server_limit = Int(
        5,
        min=0,
        help="Named servers a user may have (besides the default server). 0 means no limit.",
    ).tag(config=True)
    named_server_limit_by_group = Dict(
        value_trait=Int(min=0),
        help="""Named-server limit for members of a group, e.g. {"pangeo-data:core": 10}.

        A member of several groups gets the largest of their limits (and of
        ``named_server_limit``); 0 means no limit.
        """,
    ).tag(config=True)
    server_name_max_length = Int(
        20,
        help="Longest server name allowed (JupyterHub's own rule allows at most 30).",
    ).tag(config=True)

    @validate("server_name_max_length")
    def _check_name_length(self, proposal):
        value = proposal["value"]
        if not 1 <= value <= 30:
            raise ValueError("server_name_max_length must be between 1 and 30.")
        return value

    # --- profiles ---------------------------------------------------------

    _profiles: list[Profile] | None = None

    @observe(All)
    def _settings_changed(self, change):
        self._profiles = None  # built again from the new settings

    def all_profiles(self) -> list[Profile]:
        """Every declared profile, checked against the admin's bounds (built once per
        change of the settings: every start asks).

        Raises ValueError (a configuration error, at hub start-up) for a profile
        that is malformed or exceeds a bound.
        """
        if self._profiles is None:
            self._profiles = self._build_profiles()
        return list(self._profiles)

    def _build_profiles(self) -> list[Profile]:
        declared = self.profiles or [{"display_name": "Default", "default": True}]
        profiles = [self._build_profile(spec) for spec in declared]
        slugs = [p.slug for p in profiles]
        duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
        if duplicates:
            raise ValueError(f"Profile slugs must be unique; repeated: {', '.join(duplicates)}.")
        return profiles

    def _build_profile(self, spec: dict) -> Profile:
        if not spec.get("display_name"):
            raise ValueError(f"Every profile needs a display_name; got {spec!r}.")
        name = spec["display_name"]
        unknown = set(spec) - set(Profile.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Profile {name!r} has unknown keys: {', '.join(sorted(unknown))}.")
        mem_guarantee = spec.get("mem_guarantee")
        cpu_guarantee = spec.get("cpu_guarantee")
        profile = Profile(
            slug=spec.get("slug") or _slugify(name),
            display_name=name,
            description=spec.get("description", ""),
            cpu_limit=finite(
                f"Profile {name!r}: cpu_limit", spec.get("cpu_limit", self.default_cpu_limit)
            ),
            mem_limit=parse_bytes(spec.get("mem_limit", self.default_mem_limit)),
            cpu_guarantee=(
                None
                if cpu_guarantee is None
                else finite(f"Profile {name!r}: cpu_guarantee", cpu_guarantee)
            ),
            mem_guarantee=parse_bytes(mem_guarantee) if mem_guarantee else None,
            image=spec.get("image") or self.default_image,
            environment=str(spec.get("environment") or ""),
            disk_size=parse_bytes(spec.get("disk_size", self.default_disk_size)),
            default=bool(spec.get("default", False)),
            groups=frozenset(g.lower() for g in spec.get("groups") or ()),
            kubespawner_override=dict(spec.get("kubespawner_override") or {}),
        )
        self._check_bounds(profile)
        return profile

    def _check_bounds(self, profile: Profile) -> None:
        bounds = [
            ("cpu_limit", profile.cpu_limit, self.max_cpu_limit, "max_cpu_limit", str),
            (
                "mem_limit",
                profile.mem_limit,
                parse_bytes(self.max_mem_limit),
                "max_mem_limit",
                format_bytes,
            ),
            (
                "disk_size",
                profile.disk_size,
                parse_bytes(self.max_disk_size),
                "max_disk_size",
                format_bytes,
            ),
        ]
        guarantees = [
            ("cpu_guarantee", profile.cpu_guarantee, profile.cpu_limit, "cpu_limit", str),
            ("mem_guarantee", profile.mem_guarantee, profile.mem_limit, "mem_limit", format_bytes),
        ]
        for what, value, limit, limit_name, show in guarantees:
            if value is not None and not 0 <= value <= limit:
                raise ValueError(
                    f"Profile {profile.display_name!r}: {what} {show(value)} must be between 0 "
                    f"and the profile's {limit_name} ({show(limit)})."
                )
        for what, value, bound, setting, show in bounds:
            if value <= 0:
                raise ValueError(f"Profile {profile.display_name!r}: {what} must be positive.")
            if value > bound:
                raise ValueError(
                    f"Profile {profile.display_name!r}: {what} {show(value)} exceeds "
                    f"PangeoPolicy.{setting} ({show(bound)})."
                )

    def profiles_for(self, groups: Iterable[str]) -> list[Profile]:
        """The profiles a member of ``groups`` may use, in declared order."""
        groups = list(groups)
        return [p for p in self.all_profiles() if p.allows(groups)]

    def choose_profile(self, slug: str | None, groups: Iterable[str]) -> Profile:
        """The profile to start: the one asked for, or the user's default.

        Refuses an unknown profile (400) or one the user may not use (403), saying
        which profiles they may choose.
        """
        groups = list(groups)
        allowed = self.profiles_for(groups)
        if not allowed:
            raise PolicyError(
                403,
                "No server profile is available to you. Ask a hub admin to add you to a "
                "group that may use one.",
            )
        choices = ", ".join(f"'{p.slug}'" for p in allowed)
        if not slug:
            return next((p for p in allowed if p.default), allowed[0])
        if not isinstance(slug, str):
            raise PolicyError(400, f"The profile must be a name; choose one of: {choices}.")
        known = {p.slug: p for p in self.all_profiles()}
        if slug not in known:
            raise PolicyError(400, f"There is no profile {slug[:64]!r}. Choose one of: {choices}.")
        if not known[slug].allows(groups):
            raise PolicyError(
                403, f"You may not use the profile {slug!r}. Choose one of: {choices}."
            )
        return known[slug]

    # --- named servers ----------------------------------------------------

    def named_server_limit_for(self, groups: Iterable[str]) -> int:
        """How many named servers a member of ``groups`` may have (0: no limit)."""
        limits = [self.named_server_limit]
        limits += [
            limit
            for group, limit in self.named_server_limit_by_group.items()
            if group.lower() in {g.lower() for g in groups}
        ]
        return 0 if 0 in limits else max(limits)

    def check_new_named_server(
        self, user_name: str, named_servers: Iterable[str], groups: Iterable[str]
    ) -> None:
        """Refuse a new named server past the user's limit (403)."""
        limit = self.named_server_limit_for(groups)
        existing = sorted(named_servers)
        if limit and len(existing) >= limit:
            raise PolicyError(
                403,
                f"{user_name} already has {len(existing)} named servers "
                f"({', '.join(existing)}), the most allowed. Delete one you no longer "
                "need from the hub's home page, then create the new one.",
            )

    def server_name_rule(self) -> str:
        """The server-name rule in words: the home page's hint, and every refusal."""
        return (
            f"Use at most {self.server_name_max_length} characters: lowercase letters, digits "
            "and single hyphens, starting with a letter and ending with a letter or digit "
            "(for example 'climate-run2')."
        )

    def check_server_name(self, name: str) -> None:
        """Refuse a server name outside the rule (400), saying what a valid one looks like."""
        limit = self.server_name_max_length
        if not (len(name) <= limit and is_valid_safe_slug(name, max_length=limit)):
            raise PolicyError(
                400, f"{name[:64]!r} is not a valid server name. {self.server_name_rule()}"
            )

    def check_display_name(self, display_name) -> None:
        """Refuse a display name longer than the server-name limit (400)."""
        limit = self.server_name_max_length
        if not isinstance(display_name, str):
            raise PolicyError(400, "A server's display name must be text.")
        if len(display_name) > limit:
            raise PolicyError(
                400,
                f"{display_name[:64]!r} is too long for a server's display name. Use at most "
                f"{limit} characters, as for server names (for example 'Climate run 2').",
            )
