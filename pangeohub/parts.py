"""pangeohub's settings objects, made once per hub configuration instead of at every start.

A server's start reads several of pangeohub's parts (``ScratchService``,
``GatewayService``, ``PangeoPolicy``, ...). Each is a traitlets ``Configurable`` whose
construction loads its sections of the configuration and whose defaults may read files
(the gateway's token in the state directory): cheap once, not at every start of a
thousand servers. JupyterHub gives every spawner the same configuration object, loaded
once at start-up and not changed after :func:`pangeohub.configure` ran, so one instance
per configuration object serves every spawner of the hub.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

from traitlets.config import Configurable

Part = TypeVar("Part", bound=Configurable)

# id(config) -> (the config, its parts by class), the most recently used last. A Config is
# a dict (not hashable, not weakly keyable) and each part refers to it, so entries are
# held, a few at most: a hub has one configuration (a test run, one per hub it makes).
_parts: OrderedDict[int, tuple[object, dict[type, Configurable]]] = OrderedDict()
_KEPT = 8


def hub_part(cls: type[Part], holder: Configurable) -> Part:
    """The one ``cls`` configured from ``holder``'s configuration (e.g. a spawner's).

    Only for parts that hold settings, not state of one server or one request."""
    config = holder.config
    key = id(config)
    entry = _parts.get(key)
    if entry is None or entry[0] is not config:
        entry = _parts[key] = (config, {})
        while len(_parts) > _KEPT:
            _parts.popitem(last=False)
    _parts.move_to_end(key)
    part = entry[1].get(cls)
    if part is None:
        part = entry[1][cls] = cls(config=config)
    return part
