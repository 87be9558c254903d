"""Label and field selectors in the apiserver's query syntax."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request

Requirement = Callable[[Mapping[str, str]], bool]

# `key in (a, b)` / `key notin (a,b)`; the set may contain spaces after commas.
_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[^\s!=()]+)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses (the set syntax uses commas inside them)."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def _requirement(term: str) -> Requirement:
    if match := _SET_RE.match(term):
        key = match["key"]
        values = {v.strip() for v in match["values"].split(",") if v.strip()}
        if match["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ_RE.match(term):
        key, value = match["key"], match["value"]
        if match["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_RE.match(term):
        key, negated = match["key"], bool(match["neg"])
        return lambda labels: (key in labels) != negated
    raise bad_request(f"unable to parse requirement: {term!r}")


def parse_label_selector(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    requirements = [_requirement(term) for term in _split_terms(selector or "")]
    return lambda labels: all(requirement(labels) for requirement in requirements)


_FIELD_GETTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda obj: obj["metadata"].get("name", ""),
    "metadata.namespace": lambda obj: obj["metadata"].get("namespace", ""),
}


def parse_field_selector(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    checks: list[Callable[[dict[str, Any]], bool]] = []
    for term in _split_terms(selector or ""):
        match = _EQ_RE.match(term)
        if not match:
            raise bad_request(f"invalid field selector: {term!r}")
        getter = _FIELD_GETTERS.get(match["key"])
        if getter is None:
            raise bad_request(f'field label not supported: {match["key"]}')
        value, negated = match["value"], match["op"] == "!="
        checks.append(lambda obj, get=getter, want=value, neg=negated: (get(obj) == want) != neg)
    return lambda obj: all(check(obj) for check in checks)


def object_matcher(label_selector: str | None, field_selector: str | None) -> Callable[[dict[str, Any]], bool]:
    labels_match = parse_label_selector(label_selector)
    fields_match = parse_field_selector(field_selector)
    return lambda obj: labels_match(obj["metadata"].get("labels") or {}) and fields_match(obj)
