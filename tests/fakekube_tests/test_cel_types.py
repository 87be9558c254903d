"""The fake's CEL type checker and cost estimator: what the apiserver compiles, refuses and prices."""

from __future__ import annotations

import pytest

from fakekube.cel_types import (
    BOOL,
    DOUBLE,
    INT,
    STRING,
    CelCompileError,
    check,
    list_of,
    optional,
    schema_type,
)

SPEC = {
    "type": "object",
    "properties": {
        "workers": {"type": "integer"},
        "ratio": {"type": "number"},
        "name": {"type": "string", "maxLength": 10},
        "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 8}},
        "labels": {"type": "object", "maxProperties": 4, "additionalProperties": {"type": "string", "maxLength": 8}},
        "port": {"x-kubernetes-int-or-string": True},
        "nodes": {"type": "array", "maxItems": 3, "items": {
            "type": "object", "properties": {"id": {"type": "string", "maxLength": 4},
                                             "inputs": {"type": "array", "maxItems": 3,
                                                        "items": {"type": "string", "maxLength": 4}}}}},
        "started": {"type": "string", "format": "date-time"},
    },
}
SELF = schema_type(SPEC)


def type_of(expression: str, **variables) -> str:
    return str(check(expression, {"self": SELF, **variables}).type)


@pytest.mark.parametrize(("expression", "expected"), [
    ("self.workers >= 1 && self.ratio < 0.5", "bool"),
    ("self.workers > self.ratio", "bool"),  # ordering across int and double is declared
    ("has(self.name) ? size(self.name) : 0", "int"),
    ("self.name + '-x'", "string"),
    ("self.tags.all(t, t.startsWith('a')) || self.tags.exists_one(t, t == 'b')", "bool"),
    ("self.tags.map(t, size(t))", "list(int)"),
    ("self.tags.filter(t, t.matches('^a'))", "list(string)"),
    ("self.labels.exists(k, self.labels[k] == 'x')", "bool"),
    ("'a' in self.labels && 'b' in self.tags", "bool"),
    ("self.nodes.all(n, n.inputs.all(i, self.nodes.exists(m, m.id == i)))", "bool"),
    ("type(self.port) == int ? self.port >= 1 : self.port == 'auto'", "bool"),
    ("self.tags[0].lowerAscii()", "string"),
    ("{'a': 1, 'b': 2}[self.name]", "int"),
    ("[1, 2, 3].sum()", "int"),
    ("self.tags.join(',')", "string"),
    ("self.started < timestamp('2026-01-01T00:00:00Z')", "bool"),
    ("-self.ratio * 2.0", "double"),
])
def test_well_typed_rules(expression: str, expected: str) -> None:
    assert type_of(expression) == expected


def test_undefined_field_is_an_error_at_the_dot_with_a_caret() -> None:
    with pytest.raises(CelCompileError) as error:
        check("self.spec.nope == 1", {"self": schema_type({"type": "object", "properties": {"spec": SPEC}})})
    assert str(error.value) == "ERROR: <input>:1:10: undefined field 'nope'\n | self.spec.nope == 1\n | .........^"


@pytest.mark.parametrize(("expression", "message"), [
    ("self.workers == 1.0", "found no matching overload for '_==_' applied to '(int, double)'"),
    ("self.name + 1", "found no matching overload for '_+_' applied to '(string, int)'"),
    ("self.workers && true", "found no matching overload for '_&&_' applied to '(int, bool)'"),
    ("!self.name", "found no matching overload for '!_' applied to '(string)'"),
    ("size(self.workers) > 0", "found no matching overload for 'size' applied to '(int)'"),
    ("self.name.startsWith(1)", "found no matching overload for 'startsWith' applied to '(string, int)'"),
    ("self.workers.all(x, true)", "cannot be range of a comprehension"),
    ("nothing == 1", "undeclared reference to 'nothing'"),
    ("has(self)", "invalid argument to has() macro"),
    ("self.tags[0] == 1", "found no matching overload for '_==_' applied to '(string, int)'"),
])
def test_ill_typed_rules_are_refused(expression: str, message: str) -> None:
    with pytest.raises(CelCompileError, match=r"^ERROR: <input>:1:\d+: ") as error:
        check(expression, {"self": SELF})
    assert message in str(error.value)


def test_syntax_errors_say_what_was_expected_where() -> None:
    with pytest.raises(CelCompileError) as error:
        check("self.workers >=", {"self": SELF})
    assert str(error.value).startswith("ERROR: <input>:1:16: Syntax error: mismatched input '<EOF>' expecting {'['")


def test_old_self_as_an_optional_must_be_unwrapped() -> None:
    old = optional(SELF)
    with pytest.raises(CelCompileError, match=r"applied to '\(int, optional_type\(int\)\)'"):
        check("self.workers == oldSelf.workers", {"self": SELF, "oldSelf": old})
    checked = check("!oldSelf.hasValue() || self.workers >= oldSelf.value().workers", {"self": SELF, "oldSelf": old})
    assert (checked.type, checked.uses_old_self) == (BOOL, True)
    assert check("oldSelf.orValue(self).workers", {"self": SELF, "oldSelf": old}).type == INT
    assert not check("self.workers > 0", {"self": SELF, "oldSelf": old}).uses_old_self


def test_schema_types() -> None:
    assert SELF.field_type("ratio") == DOUBLE
    assert SELF.field_type("tags") == list_of(STRING, 5)
    assert str(SELF.field_type("labels")) == "map(string, string)"
    assert str(SELF.field_type("port")) == "dyn"
    # Root rules see the object's name, though the schema does not declare metadata.
    root = schema_type({"type": "object", "properties": {"spec": SPEC}}, root=True)
    assert type_of("size(self.metadata.name) <= 50", self=root) == "bool"
    with pytest.raises(CelCompileError, match="undefined field 'labels'"):
        check("has(self.metadata.labels)", {"self": root})


def test_costs_grow_with_declared_sizes_and_nesting() -> None:
    bounded = schema_type({"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 10}})
    unbounded = schema_type({"type": "array", "items": {"type": "string"}})
    linear = "self.all(x, x.startsWith('a'))"
    quadratic = "self.all(x, self.all(y, x != y || true))"
    assert check(linear, {"self": bounded}).cost < 100
    assert check(quadratic, {"self": bounded}).cost < 10_000
    # Without maxItems/maxLength the estimate assumes the largest request: ~1M strings of ~3M characters.
    assert check(linear, {"self": unbounded}).cost > 1_000_000
    assert check(quadratic, {"self": unbounded}).cost > 100 * 10_000_000
    assert check("self.matches('^[a-z]+$')", {"self": schema_type({"type": "string"})}).cost > \
        check("self.matches('^[a-z]+$')", {"self": schema_type({"type": "string", "maxLength": 63})}).cost
