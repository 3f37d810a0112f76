"""The cluster options users see, bounded per group (``c.GatewayPolicy``).

Users may set ``worker_cores``, ``worker_memory`` (GiB), ``image``, ``environment``
and ``idle_timeout`` (minutes). A user in several groups gets the most generous
bounds among them. The image defaults to the user's own server image (the hub sets
it in every server's Dask config); any other image must be on the allowlist.
Environment variables pangeohub sets (scratch bucket, credentials, ...) always win:
a user who tries to set one is refused. Idle shutdown is always on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

from dask_gateway_server import options as dgo
from traitlets import Callable, Dict, List, Unicode
from traitlets.config import LoggingConfigurable

from ..environment_hooks import log_hook_failure
from ..numbers import finite
from ..policy import format_bytes, parse_bytes

GiB = 1024**3
SERVER_OPTION = "server"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds and default of one numeric option, in the option's units."""

    min: float
    max: float
    default: float


@dataclass(frozen=True)
class Limits:
    """A user's totals across all their clusters; ``None`` means no limit."""

    clusters: int | None
    workers: int | None
    cores: float | None
    memory: int | None


def _group_set(groups) -> set[str]:
    return {str(g).lower() for g in groups or ()}


class _BoundedMixin:
    """Refusal messages that say the bound and who sets it."""

    unit = ""
    below_hint = ""

    def validate(self, x):
        x = self._check_type(x)
        unit = f" {self.unit}" if self.unit else ""
        if self.min is not None and x < self.min:
            raise ValueError(
                f"{self.field}={x:g}{unit} is below the minimum of {self.min:g}{unit}."
                + self.below_hint
            )
        if self.max is not None and x > self.max:
            raise ValueError(
                f"{self.field}={x:g}{unit} is above your maximum of {self.max:g}{unit}; "
                "ask a hub admin if your group needs more."
            )
        return x


class BoundedInteger(_BoundedMixin, dgo.Integer):
    def _check_type(self, x):
        if isinstance(x, bool) or not isinstance(x, int):
            raise TypeError(f"{self.field} must be a whole number, got {x!r}.")
        return x


class BoundedFloat(_BoundedMixin, dgo.Float):
    def __init__(self, *args, unit="", below_hint="", **kwargs):
        self.unit = unit
        self.below_hint = below_hint
        super().__init__(*args, **kwargs)

    def _check_type(self, x):
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise TypeError(f"{self.field} must be a number, got {x!r}.")
        if not math.isfinite(x):
            raise ValueError(f"{self.field} must be a finite number, got {x!r}.")
        return float(x)


class GatewayPolicy(LoggingConfigurable):
    """What users may ask of Dask Gateway, per group, set in ``c.GatewayPolicy``."""

    worker_cores = Dict(
        {"min": 1, "max": 2, "default": 1},
        help="""Cores per worker everyone may choose: {"min", "max", "default"}.""",
    ).tag(config=True)
    worker_memory = Dict(
        {"min": "1G", "max": "8G", "default": "2G"},
        help="""Memory per worker everyone may choose: {"min", "max", "default"},
        as sizes like "2G" (users give it in GiB).""",
    ).tag(config=True)
    idle_timeout = Dict(
        {"min": 5, "max": 60, "default": 60},
        help="""Minutes an idle cluster lives: {"min", "max", "default"}. The minimum
        must be above 0: users can shorten idle shutdown, never switch it off or raise
        it past the maximum.""",
    ).tag(config=True)
    group_bounds = Dict(
        help="""Wider bounds for members of a group, e.g.
        {"pangeo-data:climate": {"worker_cores": {"max": 8}, "worker_memory": {"max": "32G"}}}.
        A member of several groups gets the most generous of their bounds.""",
    ).tag(config=True)

    default_image = Unicode(
        "",
        help="""Image for clusters whose request names none (e.g. started from outside
        the hub). Empty: the first image in ``server_images`` the user may use.""",
    ).tag(config=True)
    image_allowlist = List(
        Unicode(),
        help="Images anyone may choose besides their own server's image.",
    ).tag(config=True)
    server_images = List(
        Dict(),
        help="""The hub's server images as [{"image": ..., "groups": [...]}] (empty
        groups: everyone). The hub config fills this from c.PangeoPolicy.profiles, so a
        user may run workers on any image they may run a server on.""",
    ).tag(config=True)

    user_limits = Dict(
        {"clusters": 2, "workers": 10, "cores": 20, "memory": "80G"},
        help="""One user's totals across all their clusters: running "clusters",
        "workers", "cores" and "memory" (schedulers count). 0 or None: no limit.""",
    ).tag(config=True)
    group_user_limits = Dict(
        help="""Higher per-user totals for members of a group, e.g.
        {"pangeo-data:climate": {"cores": 64, "memory": "256G"}}. Most generous wins.""",
    ).tag(config=True)

    environment = Dict(
        value_trait=Unicode(),
        help="""Variables set on every scheduler and worker; "{username}" is replaced
        by the user's name (e.g. {"PANGEO_SCRATCH": "s3://scratch/{username}/"}).
        Users cannot override them.""",
    ).tag(config=True)
    environment_hooks = List(
        Callable(),
        help="""Callables ``hook(user) -> dict`` (may be async; ``user`` has ``name`` and
        ``groups``) adding variables for that user's clusters, e.g. scratch
        credentials. Users cannot override them.""",
    ).tag(config=True)
    protected_environment = List(
        Unicode(),
        [
            "DASK_GATEWAY_*",
            "DASK_DISTRIBUTED__COMM__*",
            "JUPYTERHUB_*",
            "JUPYTER_IMAGE*",
            "PANGEO_*",
            "AWS_*",
            "GOOGLE_*",
            "GCS_*",
            "PATH",
            "PYTHONPATH",
            "PYTHONHOME",
            "VIRTUAL_ENV",
            "LD_*",
            "USER",
            "HOME",
        ],
        help="""Variables users may not set in ``environment`` ("PREFIX*" matches a
        prefix), besides everything pangeohub itself sets.""",
    ).tag(config=True)

    # --- bounds and limits ---------------------------------------------------

    def bounds_for(self, groups) -> dict[str, Bounds]:
        """The user's bounds for worker_cores, worker_memory (GiB), idle_timeout (min)."""
        groups = _group_set(groups)
        extra = [v for g, v in self.group_bounds.items() if g.lower() in groups]
        convert = {
            "worker_cores": lambda v: finite("GatewayPolicy.worker_cores", v),
            "worker_memory": lambda v: parse_bytes(v) / GiB,
            "idle_timeout": lambda v: finite("GatewayPolicy.idle_timeout", v),
        }
        out = {}
        for name, conv in convert.items():
            base = getattr(self, name)
            specs = [s.get(name) or {} for s in extra]
            lo = min([conv(base["min"])] + [conv(s["min"]) for s in specs if "min" in s])
            hi = max([conv(base["max"])] + [conv(s["max"]) for s in specs if "max" in s])
            defaults = [conv(s["default"]) for s in specs if "default" in s]
            default = max(defaults) if defaults else conv(base["default"])
            default = min(max(default, lo), hi)
            if lo <= 0 or lo > hi:
                raise ValueError(f"GatewayPolicy.{name}: need 0 < min <= max, got {base!r}.")
            out[name] = Bounds(lo, hi, default)
        return out

    def limits_for(self, groups) -> Limits:
        """The user's totals across clusters, most generous of their groups."""
        groups = _group_set(groups)
        specs = [self.user_limits] + [
            v for g, v in self.group_user_limits.items() if g.lower() in groups
        ]

        def most(key, conv):
            values = [s.get(key, self.user_limits.get(key)) for s in specs]
            if any(not v for v in values):
                return None
            return max(conv(v) for v in values)

        return Limits(
            clusters=most(
                "clusters", lambda v: int(finite("GatewayPolicy.user_limits clusters", v))
            ),
            workers=most("workers", lambda v: int(finite("GatewayPolicy.user_limits workers", v))),
            cores=most("cores", lambda v: finite("GatewayPolicy.user_limits cores", v)),
            memory=most("memory", parse_bytes),
        )

    # --- images ------------------------------------------------------------

    def images_for(self, groups) -> list[str]:
        """Images the user may run workers on: their server images and the allowlist."""
        groups = _group_set(groups)
        images = []
        for entry in self.server_images:
            allowed = _group_set(entry.get("groups"))
            if entry.get("image") and (not allowed or allowed & groups):
                images.append(entry["image"])
        images += [self.default_image] + list(self.image_allowlist)
        return list(dict.fromkeys(i for i in images if i))

    def default_image_for(self, groups) -> str:
        return self.default_image or next(iter(self.images_for(groups)), "")

    # --- environment -------------------------------------------------------

    async def environment_for(self, user) -> dict[str, str]:
        """What pangeohub sets on every scheduler and worker of ``user``."""
        env = {k: v.replace("{username}", user.name) for k, v in self.environment.items()}
        for hook in self.environment_hooks:
            try:
                result = hook(user)
                if isawaitable(result):
                    result = await result
            except Exception as error:
                log_hook_failure(self.log, "Environment hook", hook, user.name, error)
                raise ValueError(
                    "Your cluster's environment could not be prepared. Try again in a "
                    "minute; if it keeps failing, tell a hub admin."
                ) from None
            env.update({str(k): str(v) for k, v in (result or {}).items()})
        return env

    def is_protected(self, name: str, pangeo_env: dict) -> bool:
        if name in pangeo_env:
            return True
        for pattern in self.protected_environment:
            if (pattern.endswith("*") and name.startswith(pattern[:-1])) or name == pattern:
                return True
        return False

    def check_user_environment(self, env: dict, pangeo_env: dict) -> dict[str, str]:
        """The user's variables, or ValueError naming the ones they may not set."""
        bad = [k for k in env if not isinstance(k, str) or not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"environment: {bad[0]!r} is not a valid variable name.")
        not_str = [k for k, v in env.items() if not isinstance(v, str)]
        if not_str:
            raise ValueError(f"environment: the value of {not_str[0]} must be a string.")
        protected = sorted(k for k in env if self.is_protected(k, pangeo_env))
        if protected:
            raise ValueError(
                f"environment may not set {', '.join(protected)}: pangeohub sets "
                "these for you. Remove them and try again."
            )
        return dict(env)

    # --- the dask-gateway Options ----------------------------------------

    async def cluster_options(
        self, user, server_images=(), server_environments=None
    ) -> dgo.Options:
        """The options ``user`` sees (for ``Backend.get_cluster_options``).

        ``server_images`` are the images the hub reported for the user's servers, and
        ``server_environments`` (server tag -> variables) what the workers of a cluster
        started from that server get.
        """
        server_environments = server_environments or {}
        bounds = self.bounds_for(user.groups)
        images = list(dict.fromkeys([*server_images, *self.images_for(user.groups)]))
        default_image = self.default_image_for(user.groups)
        pangeo_env = await self.environment_for(user)
        cores, memory, idle = (
            bounds["worker_cores"],
            bounds["worker_memory"],
            bounds["idle_timeout"],
        )

        def handler(options, user) -> dict[str, Any]:
            image = options.image or default_image
            if image and image not in images:
                choices = ", ".join(images) or "none"
                raise ValueError(
                    f"image {image[:200]!r} is not allowed. Leave it unset to use your "
                    f"server's image, or choose one of: {choices}."
                )
            server_env = server_environments.get(options.server, {})
            protected = {**server_env, **pangeo_env}
            env = self.check_user_environment(options.environment, protected)
            env.update(protected)
            env["JUPYTER_IMAGE_SPEC"] = image
            return {
                "worker_cores": options.worker_cores,
                "worker_memory": int(options.worker_memory * GiB),
                "idle_timeout": options.idle_timeout * 60,
                "image": image,
                "environment": env,
            }

        return dgo.Options(
            BoundedInteger(
                "worker_cores",
                default=int(cores.default),
                min=int(cores.min),
                max=int(cores.max),
                label="Worker cores",
            ),
            BoundedFloat(
                "worker_memory",
                default=memory.default,
                min=memory.min,
                max=memory.max,
                unit="GiB",
                label="Worker memory (GiB)",
            ),
            dgo.String("image", default=default_image, label="Image"),
            dgo.Mapping("environment", default={}, label="Environment variables"),
            BoundedFloat(
                "idle_timeout",
                default=idle.default,
                min=idle.min,
                max=idle.max,
                unit="minutes",
                below_hint=" Idle clusters always shut down on this hub.",
                label="Idle timeout (minutes)",
            ),
            dgo.String(SERVER_OPTION, default="", label="Hub server (the cluster stops with it)"),
            handler=handler,
        )


def describe_usage(workers: int, cores: float, memory: int) -> str:
    """``3 workers, 4 cores, 2 GiB``."""
    return f"{plural(workers, 'worker')}, {plural(cores, 'core')}, {format_bytes(memory)}"


def plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")
