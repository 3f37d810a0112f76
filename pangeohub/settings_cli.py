"""``pangeohub-settings``: every setting pangeohub adds, listed from the command line.

``jupyterhub --help-all`` lists JupyterHub's classes and, through its entry points, the
spawners and authenticators (pangeohub's among them), but none of pangeohub's other
parts (``PangeoPolicy``, scratch, the gateway, culling, isolation, launch links, shared
data, the pages): JupyterHub has no entry point for them. This command is a traitlets
``Application`` whose ``classes`` are every configurable class pangeohub defines, found
by importing pangeohub's modules (no list kept by hand, so a new class is listed when it
is written). Without arguments it prints each class's own settings with their help and
default (``pangeohub-settings scratch`` only the classes whose name has "scratch");
``--help-all`` prints traitlets' own listing, inherited settings included.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys

from traitlets import List, default
from traitlets.config import Application, Configurable

import pangeohub

# Modules that are traitlets configuration files (run with a ``c``), not code to import.
CONFIG_FILE_SUFFIX = "_config"


def pangeohub_modules() -> list[str]:
    """The names of pangeohub's modules (its configuration files, ``__main__`` and this
    command left out)."""
    return sorted(
        info.name
        for info in pkgutil.walk_packages(pangeohub.__path__, "pangeohub.")
        if not info.name.endswith((CONFIG_FILE_SUFFIX, "__main__", ".settings_cli"))
    )


def own_settings(cls: type[Configurable]) -> dict:
    """The settings ``cls`` defines itself (an application's, less traitlets' own
    ``Application`` settings, which traitlets may re-attach to a subclass once used)."""
    own = cls.class_own_traits(config=True)
    if issubclass(cls, Application):
        own = {name: t for name, t in own.items() if name not in Application.class_traits()}
    return own


def configurable_classes(module) -> list[type[Configurable]]:
    """The classes ``module`` defines that have settings of their own."""
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Configurable) and cls.__module__ == module.__name__ and own_settings(cls)
    ]


def pangeohub_classes(failed: list[str] | None = None) -> list[type[Configurable]]:
    """Every configurable class pangeohub defines, by module; a module that cannot be
    imported is named in ``failed``."""
    classes = []
    for name in pangeohub_modules():
        try:
            module = importlib.import_module(name)
        except Exception as error:  # e.g. an optional dependency not installed
            if failed is not None:
                failed.append(f"{name}: {type(error).__name__}: {error}")
            continue
        classes += configurable_classes(module)
    return classes


def own_settings_help(cls: type[Configurable]) -> str:
    """``cls``'s heading and its own settings, each in traitlets' ``--help-all`` format."""
    summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    heading = f"{cls.__name__} ({cls.__module__}): {summary}".rstrip(": ")
    traits = own_settings(cls)
    lines = [heading, "-" * min(len(heading), 79)]
    lines += [cls.class_get_trait_help(traits[name]) for name in sorted(traits)]
    return "\n".join(lines)


class PangeohubSettings(Application):
    """Lists every pangeohub setting with its help and default."""

    name = "pangeohub-settings"
    description = (
        "Every setting pangeohub adds, as c.<Class>.<setting> in jupyterhub_config.py or "
        "the admin file ($PANGEOHUB_CONFIG); --help-all adds the inherited ones."
    )
    classes = List()
    failed = List(help="Modules of pangeohub that could not be imported.")

    @default("classes")
    def _pangeohub_classes(self):
        return pangeohub_classes(self.failed)

    def start(self):
        wanted = [word.lower() for word in self.extra_args]
        for cls in self.classes:
            if cls is type(self):  # traitlets puts the application first in its classes
                continue
            if wanted and not any(word in cls.__name__.lower() for word in wanted):
                continue
            print(own_settings_help(cls), end="\n\n")
        for failure in self.failed:
            print(f"pangeohub-settings: not listed, {failure}", file=sys.stderr)
        if self.failed:
            self.exit(1)


def main(argv=None) -> None:
    PangeohubSettings.launch_instance(argv)


if __name__ == "__main__":
    main()
