"""pangeohub's profiles as KubeSpawner's ``profile_list``, and the choices made in them.

A profile becomes a ``profile_list`` entry whose ``kubespawner_override`` carries the
profile's image and resources (over the admin's own ``kubespawner_override``): KubeSpawner
applies it, once, when the server starts. The options a person picks in it
(``profile_options``: e.g. an image) are checked here first: an unknown choice is a 400,
an unlisted value the admin did not allow a 403.
"""

from __future__ import annotations

import copy
import re

from ..lab.picker import describe, mark_previous
from ..policy import PolicyError, Profile

_GiB, _MiB = 1024**3, 1024**2
# The value of an option's select (KubeSpawner's form, fancy-profiles) when the person
# typed their own value in the option's "--unlisted-choice" field.
UNLISTED = "unlisted_choice"
# what a profile sets on KubeSpawner; a profile option's override may not set these
PROFILE_TRAITS = frozenset(
    {"image", "cpu_limit", "mem_limit", "cpu_guarantee", "mem_guarantee", "storage_capacity"}
)


def quantity(size: int) -> str:
    """A byte count as a Kubernetes quantity: 2147483648 -> "2Gi"."""
    for suffix, unit in (("Gi", _GiB), ("Mi", _MiB)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def profile_override(profile: Profile, resources: dict) -> dict:
    """The entry's ``kubespawner_override``: the admin's, then the profile's image,
    ``resources`` (the spawner traits its limits set) and disk size, which win."""
    override = copy.deepcopy(profile.kubespawner_override)
    override.update(resources)
    override["image"] = profile.image
    override["storage_capacity"] = quantity(profile.disk_size)
    return override


def resource_overrides(profile_options: dict) -> list[str]:
    """Where a profile option's choice would set what the profile sets (a resource, the
    disk), e.g. ``"pangeo: size: large: mem_limit"``; an option choosing the image is fine."""
    found = []
    for slug, options in (profile_options or {}).items():
        for name, spec in (options or {}).items():
            choices = dict((spec or {}).get("choices") or {})
            choices[UNLISTED] = (spec or {}).get("unlisted_choice") or {}
            for choice, body in choices.items():
                keys = set((body or {}).get("kubespawner_override") or {}) - {"image"}
                found += [
                    f"{slug}: {name}: {choice}: {key}" for key in sorted(keys & PROFILE_TRAITS)
                ]
    return found


class ProfileChoices:
    """KubeSpawner mixin: the profile list a person may choose from, and their choices
    (settings: ``profile_options``, ``unlisted_choice_allowlist``, ``unlisted_choice_pattern``)."""

    def kube_profile_list(self, spawner=None) -> list[dict]:
        """KubeSpawner's profile_list: only the profiles this user may choose, the
        server's previous choice pre-selected."""
        entries = [self.kube_profile(p) for p in self.allowed_profiles()]
        return mark_previous(entries, (self.user_options or {}).get("profile"))

    def kube_profile(self, profile: Profile) -> dict:
        """``profile`` as a ``profile_list`` entry, with its options."""
        entry = {
            "display_name": profile.display_name,
            "slug": profile.slug,
            "description": describe(profile),
            "default": profile.default,
            "kubespawner_override": profile_override(profile, self.profile_traits(profile)),
        }
        if profile.slug in self.profile_options:
            entry["profile_options"] = copy.deepcopy(self.profile_options[profile.slug])
        return entry

    def check_options(self, options: dict, profile: Profile) -> None:
        """Refuse unknown choices and unlisted choices the admin did not allow (4xx)."""
        option_specs = self.profile_options.get(profile.slug, {})
        for name, spec in option_specs.items():
            self._check_option(profile, name, spec, options)
        known = set(option_specs) | {f"{n}--unlisted-choice" for n in option_specs}
        known |= {"profile", "binder"}  # "binder": a launch from a repository
        unknown = sorted(k for k in options if k not in known and not k.startswith("_"))
        if unknown:
            self.log.warning("Ignoring unknown options for %s: %s", self._log_name, unknown[:10])

    def _check_option(self, profile: Profile, name: str, spec: dict, options: dict) -> None:
        label = spec.get("display_name", name)
        choices = spec.get("choices") or {}
        choice = options.get(name)
        unlisted = options.get(f"{name}--unlisted-choice")
        if choice == UNLISTED and not unlisted and (spec.get("unlisted_choice") or {}):
            field = spec["unlisted_choice"].get("display_name") or label
            raise PolicyError(400, f"Enter the {field}, or choose a listed {label}.")
        # a form's select says "unlisted_choice" beside the value typed (KubeSpawner
        # then uses that value); the value is checked below
        if choice and choice not in choices and not (choice == UNLISTED and unlisted):
            listed = ", ".join(f"'{c}'" for c in choices) or "none"
            raise PolicyError(
                400,
                f"There is no {label} choice {str(choice)[:64]!r}. Choose one of: {listed}.",
            )
        if not unlisted:
            return
        if not (spec.get("unlisted_choice") or {}).get("enabled"):
            raise PolicyError(400, f"The profile {profile.slug!r} has no custom {label}.")
        if not self.unlisted_choice_allowed(str(unlisted), spec):
            raise PolicyError(
                403,
                f"The {label} {str(unlisted)[:128]!r} is not allowed on this hub. "
                "Choose a listed one, or ask a hub admin to allow it.",
            )

    def unlisted_choice_allowed(self, value: str, spec: dict) -> bool:
        """An unlisted choice must be allowlisted or match the admin's pattern."""
        own = (spec.get("unlisted_choice") or {}).get("validation_regex")
        if own and not re.fullmatch(own, value):
            return False
        if value in self.unlisted_choice_allowlist:
            return True
        return bool(self.unlisted_choice_pattern) and bool(
            re.fullmatch(self.unlisted_choice_pattern, value)
        )
