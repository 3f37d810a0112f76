"""Label and field selectors, and resource quantities, as the API server parses them."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("500m", "2Gi", "1.5") into a Decimal."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    number, suffix = m.groups()
    return Decimal(number) * Decimal(_SUFFIXES[suffix] if suffix else 1)


class SelectorError(ValueError):
    """An unparseable or unsupported selector (the API answers 400)."""


def _split(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ_RE = re.compile(r"^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$")
_EXISTS_RE = re.compile(r"^(!?)([\w./-]+)$")


def label_matcher(selector: str | None):
    """Return a function labels-dict -> bool for a label selector string."""
    tests = []
    for req in _split(selector or ""):
        if m := _SET_RE.match(req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda lab, k=key, v=values: lab.get(k) in v)
            else:
                tests.append(lambda lab, k=key, v=values: lab.get(k) not in v)
        elif m := _EQ_RE.match(req):
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda lab, k=key, v=value: lab.get(k) != v)
            else:
                tests.append(lambda lab, k=key, v=value: lab.get(k) == v)
        elif m := _EXISTS_RE.match(req):
            neg, key = m.groups()
            tests.append(lambda lab, k=key, n=bool(neg): (k in lab) != n)
        else:
            raise SelectorError(f"unable to parse requirement: {req!r}")
    return lambda labels: all(t(labels or {}) for t in tests)


_COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
FIELDS = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "secrets": {"type"},
    "namespaces": {"status.phase"},
}


def _lookup(obj: dict, path: str) -> str:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if path == "source" and isinstance(cur, dict):
        cur = cur.get("component")
    return "" if cur is None else str(cur)


def field_matcher(selector: str | None, plural: str):
    """Return a function object -> bool for a field selector, or raise SelectorError."""
    tests = []
    allowed = _COMMON_FIELDS | FIELDS.get(plural, set())
    for req in _split(selector or ""):
        m = re.match(r"^([\w.]+)\s*(==|=|!=)\s*(.*)$", req)
        if not m:
            raise SelectorError(f"invalid selector: {req!r}; can't understand {req!r}")
        key, op, value = m.groups()
        if key not in allowed:
            raise SelectorError(f"field label not supported: {key}")
        if op == "!=":
            tests.append(lambda o, k=key, v=value: _lookup(o, k) != v)
        else:
            tests.append(lambda o, k=key, v=value: _lookup(o, k) == v)
    return lambda obj: all(t(obj) for t in tests)
