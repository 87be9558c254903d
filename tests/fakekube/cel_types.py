"""A type checker and cost estimator for the CEL of CRD validation rules, over cel-python's parse tree.

cel-python parses and evaluates CEL but does not type-check it. The apiextensions server compiles
every `x-kubernetes-validations` rule against the types its schema declares before it admits a
CRD: an undefined field, an operator applied to the wrong types or a rule that does not return a
bool is refused, and so is a rule whose worst-case cost is too high. This module does the same for
the CEL that CRD rules use (fields, has(), size(), comparisons, logic, arithmetic, `in`, the
all/exists/exists_one/map/filter macros, string and list functions, optionals for oldSelf), with
the apiserver's error texts (`ERROR: <input>:LINE:COL: ...` and a caret line).

Costs follow the shape of the apiserver's estimator: one unit per field selection and call,
string work at a tenth of a unit per character, macros multiplied by the largest size of what they
iterate. Sizes come from maxLength/maxItems/maxProperties, or, where the schema sets none, from how
many of the smallest value fit into the largest request the apiserver accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import lark
from celpy.celparser import CELParser

Schema = dict[str, Any]

MAX_REQUEST_BYTES = 3 * 1024 * 1024
UNBOUNDED_STRING = MAX_REQUEST_BYTES - 2
STRING_TRAVERSAL_FACTOR = 0.1
REGEX_LENGTH_FACTOR = 0.25
LIST_CREATE_COST = 10
MAP_CREATE_COST = 30

_PARSER = CELParser()
# What ANTLR (the apiserver's CEL parser) says it expected where an operand must start.
_OPERAND_EXPECTED = ("{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, "
                     "NUM_UINT, STRING, BYTES, IDENTIFIER}")
_OPERAND_TOKENS = {"BANG", "IDENT", "INT_LIT", "LPAR", "LSQB", "MINUS", "STRING_LIT"}


@dataclass(frozen=True)
class CelType:
    """A CEL type; `size` is the largest length/count a value may have (cost estimates only)."""

    kind: str  # int uint double bool string bytes null_type dyn timestamp duration list map object optional error
    params: tuple[CelType, ...] = ()
    fields: tuple[tuple[str, CelType], ...] = ()
    size: int = field(default=1, compare=False)

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list({self.params[0]})"
        if self.kind == "map":
            return f"map({self.params[0]}, {self.params[1]})"
        if self.kind == "optional":
            return f"optional_type({self.params[0]})"
        if self.kind == "timestamp":
            return "google.protobuf.Timestamp"
        if self.kind == "duration":
            return "google.protobuf.Duration"
        return self.kind

    def field_type(self, name: str) -> CelType | None:
        return dict(self.fields).get(name)


def simple(kind: str, size: int = 1) -> CelType:
    return CelType(kind, size=size)


INT, UINT, DOUBLE, BOOL = simple("int"), simple("uint"), simple("double"), simple("bool")
STRING, BYTES, NULL, DYN = simple("string"), simple("bytes"), simple("null_type"), simple("dyn")
ERROR = simple("error")
TYPE = simple("type")
TIMESTAMP, DURATION = simple("timestamp"), simple("duration")
_NUMERIC = {"int", "uint", "double"}
_ORDERED = _NUMERIC | {"string", "bytes", "bool", "timestamp", "duration"}


def list_of(item: CelType, size: int) -> CelType:
    return CelType("list", (item,), size=size)


def map_of(key: CelType, value: CelType, size: int) -> CelType:
    return CelType("map", (key, value), size=size)


def optional(inner: CelType) -> CelType:
    return CelType("optional", (inner,), size=inner.size)


# --- schema -> type ---------------------------------------------------------------------------------


def min_json_size(schema: Schema) -> int:
    """Bytes of the smallest JSON value the schema allows (how many can fit in one request)."""
    if schema.get("x-kubernetes-int-or-string"):
        return 1
    return {"string": 2, "integer": 1, "number": 1, "boolean": 4, "array": 2, "object": 2}.get(
        schema.get("type", ""), 1)


def max_items(schema: Schema) -> int:
    if "maxItems" in schema:
        return int(schema["maxItems"])
    return (MAX_REQUEST_BYTES - 2) // (min_json_size(schema.get("items", {})) + 1)


def max_properties(schema: Schema) -> int:
    if "maxProperties" in schema:
        return int(schema["maxProperties"])
    values = schema.get("additionalProperties")
    # A key is at least `"":` and a separator: 4 bytes besides its value.
    return (MAX_REQUEST_BYTES - 2) // (min_json_size(values if isinstance(values, dict) else {}) + 4)


def schema_type(schema: Schema, *, root: bool = False) -> CelType:
    """The CEL type the apiserver gives a value of `schema` (root: the object's own metadata is visible)."""
    if schema.get("x-kubernetes-int-or-string"):
        return DYN
    kind = schema.get("type")
    if kind == "string":
        size = int(schema.get("maxLength", UNBOUNDED_STRING))
        if schema.get("format") == "date-time":
            return simple("timestamp")
        if schema.get("format") == "duration":
            return simple("duration")
        if schema.get("format") == "byte":
            return simple("bytes", size)
        return simple("string", size)
    if kind == "integer":
        return INT
    if kind == "number":
        return DOUBLE
    if kind == "boolean":
        return BOOL
    if kind == "array":
        return list_of(schema_type(schema.get("items", {})), max_items(schema))
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            return map_of(STRING, schema_type(values), max_properties(schema))
        properties = dict(schema.get("properties", {}))
        if root or schema.get("x-kubernetes-embedded-resource"):
            properties["metadata"] = {"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 253}, "generateName": {"type": "string", "maxLength": 253}}}
            properties.setdefault("apiVersion", {"type": "string"})
            properties.setdefault("kind", {"type": "string"})
        if not properties and schema.get("x-kubernetes-preserve-unknown-fields"):
            return DYN
        fields = tuple((name, schema_type(child)) for name, child in properties.items())
        return CelType("object", fields=fields, size=max(len(fields), 1))
    return DYN


# --- results ----------------------------------------------------------------------------------------


class CelCompileError(Exception):
    """The expression does not compile; str() is the apiserver's text (one `ERROR:` block per problem)."""


@dataclass(frozen=True)
class Checked:
    type: CelType
    cost: int
    uses_old_self: bool


@dataclass(frozen=True)
class _Typed:
    type: CelType
    cost: int


def check(expression: str, variables: dict[str, CelType]) -> Checked:
    """Type-check `expression` with `variables` (self, oldSelf) declared; CelCompileError when it fails."""
    tree = _parse(expression)
    checker = _Checker(expression, variables)
    typed = checker.visit(tree)
    if checker.errors:
        raise CelCompileError("\n".join(checker.errors))
    return Checked(typed.type, max(typed.cost, 0), checker.uses_old_self)


def _parse(expression: str) -> lark.Tree:
    assert CELParser.CEL_PARSER is not None
    try:
        return CELParser.CEL_PARSER.parse(expression)
    except lark.exceptions.UnexpectedToken as error:
        at_end = error.token.type == "$END"
        found = "<EOF>" if at_end else str(error.token)
        expected = _OPERAND_EXPECTED if _OPERAND_TOKENS <= set(error.expected) else (
            "{" + ", ".join(sorted(error.expected)) + "}")
        line, column = _end_position(expression) if at_end else (error.line, error.column)
        raise CelCompileError(_located(expression, line, column,
                                       f"Syntax error: mismatched input '{found}' expecting {expected}")) from None
    except lark.exceptions.UnexpectedInput as error:
        raise CelCompileError(_located(expression, error.line, error.column,
                                       f"Syntax error: token recognition error at: '{_character_at(expression, error)}'")
                              ) from None


def _character_at(expression: str, error: lark.exceptions.UnexpectedInput) -> str:
    lines = expression.splitlines() or [""]
    line = lines[min(max(error.line, 1), len(lines)) - 1]
    return line[error.column - 1:error.column] if error.column and error.column > 0 else ""


def _end_position(expression: str) -> tuple[int, int]:
    lines = expression.split("\n")
    return len(lines), len(lines[-1]) + 1


def _located(expression: str, line: int, column: int, message: str) -> str:
    source = expression.split("\n")[line - 1] if expression else ""
    return f"ERROR: <input>:{line}:{column}: {message}\n | {source}\n | {'.' * (column - 1)}^"


# --- the checker ------------------------------------------------------------------------------------


_BINARY = {
    "relation_lt": "_<_", "relation_le": "_<=_", "relation_gt": "_>_", "relation_ge": "_>=_",
    "relation_eq": "_==_", "relation_ne": "_!=_", "relation_in": "@in",
    "addition_add": "_+_", "addition_sub": "_-_",
    "multiplication_mul": "_*_", "multiplication_div": "_/_", "multiplication_mod": "_%_",
}
_OPERATOR_TEXT = {"_<_": "<", "_<=_": "<=", "_>_": ">", "_>=_": ">=", "_==_": "==", "_!=_": "!=", "@in": "in",
                  "_+_": "+", "_-_": "-", "_*_": "*", "_/_": "/", "_%_": "%"}
_MACROS = {"all", "exists", "exists_one", "map", "filter"}
# Type names are values of type `type` (as in `type(self) == int`).
_TYPE_NAMES = {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"}
_CONVERSIONS = {"int": INT, "uint": UINT, "double": DOUBLE, "string": STRING, "bytes": BYTES, "bool": BOOL,
                "dyn": DYN, "timestamp": TIMESTAMP, "duration": DURATION}


def _assignable(actual: CelType, wanted: CelType) -> bool:
    if "dyn" in (actual.kind, wanted.kind) or "error" in (actual.kind, wanted.kind):
        return True
    if actual.kind != wanted.kind:
        return False
    if actual.kind == "object":
        return actual.fields == wanted.fields
    return all(_assignable(a, w) for a, w in zip(actual.params, wanted.params, strict=True))


def _meta(node: lark.Tree, name: str) -> int | None:
    """A position of `node`; cel-python keeps none for a subtree made only of a keyword literal."""
    return getattr(node.meta, name, None)


def _is(value: CelType, *kinds: str) -> bool:
    return value.kind in kinds or value.kind in ("dyn", "error")


def _string_cost(*types: CelType) -> int:
    return math.ceil(STRING_TRAVERSAL_FACTOR * sum(t.size for t in types))


class _Checker:
    def __init__(self, expression: str, variables: dict[str, CelType]) -> None:
        self.expression = expression
        self.scopes: list[dict[str, CelType]] = [dict(variables)]
        self.errors: list[str] = []
        self.uses_old_self = False

    # -- helpers --

    def error(self, line: int | None, column: int | None, message: str) -> _Typed:
        # cel-python keeps no positions for keyword literals (true, false, null): fall back to the start.
        self.errors.append(_located(self.expression, line or 1, column or 1, message))
        return _Typed(ERROR, 0)

    def _column_of(self, operator: str, left: lark.Tree, node: lark.Tree) -> int:
        """Where `operator` follows the operand `left` (the column cel-go reports for a binary call)."""
        start = _meta(left, "end_column") or _meta(node, "column") or 1
        line = self.expression.split("\n")[(_meta(node, "line") or 1) - 1]
        found = line.find(operator, start - 1)
        return found + 1 if found >= 0 else start

    def no_overload(self, node: lark.Tree, column: int | None, name: str, *args: CelType) -> _Typed:
        if any(a.kind == "error" for a in args):
            return _Typed(ERROR, 0)
        shown = ", ".join(str(a) for a in args)
        return self.error(_meta(node, "line"), column, f"found no matching overload for '{name}' applied to '({shown})'")

    def lookup(self, name: str) -> CelType | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def visit(self, node: Any) -> _Typed:
        method = getattr(self, f"_{node.data}", None)
        if method is None:
            return self.error(_meta(node, "line"), _meta(node, "column"), f"unsupported expression: {node.data}")
        return method(node)

    def _pass_through(self, node: lark.Tree) -> _Typed:
        return self.visit(node.children[0])

    _primary = _pass_through
    _member = _pass_through

    # -- logic --

    def _expr(self, node: lark.Tree) -> _Typed:
        if len(node.children) == 1:
            return self.visit(node.children[0])
        condition, then, otherwise = (self.visit(child) for child in node.children)
        if not _is(condition.type, "bool"):
            return self.no_overload(node, _meta(node, "column"), "_?_:_", condition.type, then.type, otherwise.type)
        if not (_assignable(then.type, otherwise.type) or then.type.kind == "null_type"
                or otherwise.type.kind == "null_type"):
            return self.no_overload(node, _meta(node, "column"), "_?_:_", condition.type, then.type, otherwise.type)
        result = then.type if then.type.kind not in ("dyn", "null_type") else otherwise.type
        return _Typed(result, condition.cost + max(then.cost, otherwise.cost))

    def _logical(self, node: lark.Tree, name: str) -> _Typed:
        if len(node.children) == 1:
            return self.visit(node.children[0])
        left, right = self.visit(node.children[0]), self.visit(node.children[1])
        if not (_is(left.type, "bool") and _is(right.type, "bool")):
            column = self._column_of("||" if name == "_||_" else "&&", node.children[0], node)
            return self.no_overload(node, column, name, left.type, right.type)
        return _Typed(BOOL, left.cost + right.cost)

    def _conditionalor(self, node: lark.Tree) -> _Typed:
        return self._logical(node, "_||_")

    def _conditionaland(self, node: lark.Tree) -> _Typed:
        return self._logical(node, "_&&_")

    def _unary(self, node: lark.Tree) -> _Typed:
        if len(node.children) == 1:
            return self.visit(node.children[0])
        operator, operand_node = node.children
        operand = self.visit(operand_node)
        if operator.data == "unary_not":
            if not _is(operand.type, "bool"):
                return self.no_overload(node, node.meta.column, "!_", operand.type)
            return _Typed(BOOL, operand.cost + 1)
        if not _is(operand.type, "int", "double", "duration"):
            return self.no_overload(node, node.meta.column, "-_", operand.type)
        return _Typed(operand.type, operand.cost + 1)

    # -- binary operators --

    def _binary(self, node: lark.Tree) -> _Typed:
        if len(node.children) == 1:
            return self.visit(node.children[0])
        operator_node, right_node = node.children
        name = _BINARY[operator_node.data]
        left, right = self.visit(operator_node.children[0]), self.visit(right_node)
        column = operator_node.meta.end_column - len(_OPERATOR_TEXT[name])
        result = self._operator(name, left.type, right.type)
        if result is None:
            return self.no_overload(node, column, name, left.type, right.type)
        return _Typed(result[0], left.cost + right.cost + result[1])

    _relation = _binary
    _addition = _binary
    _multiplication = _binary

    @staticmethod
    def _operator(name: str, left: CelType, right: CelType) -> tuple[CelType, int] | None:
        """The result type and the operator's own cost, or None when no overload applies."""
        if name in ("_==_", "_!=_"):
            if not _assignable(left, right) and not (left.kind == "null_type" or right.kind == "null_type"):
                return None
            if left.kind in ("string", "bytes", "list", "map", "object"):
                return BOOL, max(1, _string_cost(simple("x", min(left.size, right.size))))
            return BOOL, 1
        if name in ("_<_", "_<=_", "_>_", "_>=_"):
            numeric = left.kind in _NUMERIC and right.kind in _NUMERIC
            if not (numeric or (left.kind == right.kind and left.kind in _ORDERED)
                    or "dyn" in (left.kind, right.kind) or "error" in (left.kind, right.kind)):
                return None
            if left.kind in ("string", "bytes"):
                return BOOL, max(1, _string_cost(simple("x", min(left.size, right.size))))
            return BOOL, 1
        if name == "@in":
            if right.kind == "list":
                return (BOOL, max(1, right.size)) if _assignable(left, right.params[0]) else None
            if right.kind == "map":
                return (BOOL, 1) if _assignable(left, right.params[0]) else None
            return (BOOL, 1) if right.kind in ("dyn", "error") else None
        if "dyn" in (left.kind, right.kind) or "error" in (left.kind, right.kind):
            return (right if left.kind in ("dyn", "error") else left), 1
        if name == "_+_":
            if left.kind == right.kind and left.kind in ("string", "bytes"):
                return simple(left.kind, left.size + right.size), max(1, _string_cost(left, right))
            if left.kind == right.kind == "list" and _assignable(left.params[0], right.params[0]):
                return list_of(left.params[0], left.size + right.size), 1
            if left.kind == right.kind and left.kind in _NUMERIC | {"duration"}:
                return left, 1
            if {left.kind, right.kind} == {"timestamp", "duration"}:
                return TIMESTAMP, 1
            return None
        if name == "_-_":
            if left.kind == right.kind and left.kind in _NUMERIC | {"duration"}:
                return left, 1
            if left.kind == right.kind == "timestamp":
                return DURATION, 1
            if left.kind == "timestamp" and right.kind == "duration":
                return TIMESTAMP, 1
            return None
        if left.kind == right.kind and left.kind in (_NUMERIC if name != "_%_" else {"int", "uint"}):
            return left, 1
        return None

    # -- members --

    def _member_dot(self, node: lark.Tree) -> _Typed:
        operand_node, name_token = node.children
        name = str(name_token)
        operand = self.visit(operand_node)
        column = node.meta.end_column - len(name) - 1
        return self._select(node, operand, name, column, test_only=False)

    def _select(self, node: lark.Tree, operand: _Typed, name: str, column: int, *, test_only: bool) -> _Typed:
        target = operand.type
        wrapped = target.kind == "optional"
        if wrapped:
            target = target.params[0]
        if target.kind in ("dyn", "error"):
            result = target
        elif target.kind == "map":
            if not _assignable(STRING, target.params[0]):
                return self.error(_meta(node, "line"), column, f"type '{target}' does not support field selection")
            result = target.params[1]
        elif target.kind == "object":
            found = target.field_type(name)
            if found is None:
                return self.error(_meta(node, "line"), column, f"undefined field '{name}'")
            result = found
        else:
            return self.error(_meta(node, "line"), column, f"type '{target}' does not support field selection")
        if test_only:
            return _Typed(BOOL, operand.cost + 1)
        return _Typed(optional(result) if wrapped else result, operand.cost + 1)

    @staticmethod
    def _dotted(node: Any) -> str:
        tokens = [str(token) for token in node.scan_values(lambda value: isinstance(value, lark.Token))]
        return ".".join(tokens)

    def _member_index(self, node: lark.Tree) -> _Typed:
        operand_node, index_node = node.children
        operand, index = self.visit(operand_node), self.visit(index_node)
        target = operand.type
        wrapped = target.kind == "optional"
        if wrapped:
            target = target.params[0]
        cost = operand.cost + index.cost + 1
        if target.kind in ("dyn", "error"):
            return _Typed(target, cost)
        if target.kind == "list" and _is(index.type, "int", "uint"):
            return _Typed(optional(target.params[0]) if wrapped else target.params[0], cost)
        if target.kind == "map" and _assignable(index.type, target.params[0]):
            return _Typed(optional(target.params[1]) if wrapped else target.params[1], cost)
        column = operand_node.meta.end_column
        return self.no_overload(node, column, "_[_]", target, index.type)

    def _member_object(self, node: lark.Tree) -> _Typed:
        return self.error(_meta(node, "line"), node.meta.column, "message construction is not supported in CRD rules")

    # -- calls --

    def _arguments(self, node: lark.Tree | None) -> list[lark.Tree]:
        return list(node.children) if node is not None else []

    def _member_dot_arg(self, node: lark.Tree) -> _Typed:
        receiver_node, name_token, *rest = node.children
        name = str(name_token)
        argument_nodes = self._arguments(rest[0] if rest else None)
        column = node.meta.end_column - self._call_tail_length(node, name)
        if self._dotted(receiver_node) == "optional" and self.lookup("optional") is None:
            return self._optional_constructor(node, name, argument_nodes, column)
        if name in _MACROS:
            return self._macro(node, name, receiver_node, argument_nodes, column)
        receiver = self.visit(receiver_node)
        arguments = [self.visit(argument) for argument in argument_nodes]
        return self._method(node, column, name, receiver, arguments)

    def _call_tail_length(self, node: lark.Tree, name: str) -> int:
        """Columns from the method's '(' to the end of the call, to point at the '(' as cel-go does."""
        text = self.expression.split("\n")[node.meta.end_line - 1][:node.meta.end_column - 1]
        opening = text.rfind(name + "(")
        return node.meta.end_column - (opening + len(name) + 1) if opening >= 0 else len(name) + 2

    def _optional_constructor(self, node: lark.Tree, name: str, argument_nodes: list[lark.Tree],
                              column: int) -> _Typed:
        arguments = [self.visit(argument) for argument in argument_nodes]
        if name == "of" and len(arguments) == 1:
            return _Typed(optional(arguments[0].type), arguments[0].cost + 1)
        if name == "none" and not arguments:
            return _Typed(optional(DYN), 1)
        return self.no_overload(node, column, f"optional.{name}", *(a.type for a in arguments))

    def _macro(self, node: lark.Tree, name: str, range_node: lark.Tree, argument_nodes: list[lark.Tree],
               column: int) -> _Typed:
        iterated = self.visit(range_node)
        expected = 3 if name == "map" and len(argument_nodes) == 3 else 2
        variable = self._identifier(argument_nodes[0]) if argument_nodes else None
        if len(argument_nodes) != expected or variable is None:
            return self.error(_meta(node, "line"), column, f"invalid argument to {name}() macro: "
                                                      "expects an identifier and an expression")
        target = iterated.type
        if target.kind == "list":
            element, count = target.params[0], target.size
        elif target.kind == "map":
            element, count = target.params[0], target.size
        elif target.kind in ("dyn", "error"):
            element, count = target, 1
        else:
            return self.error(_meta(node, "line"), column, f"expression of type '{target}' cannot be range of a "
                                                      "comprehension (must be list, map, or dynamic)")
        self.scopes.append({variable: element})
        try:
            bodies = [self.visit(argument) for argument in argument_nodes[1:]]
        finally:
            self.scopes.pop()
        step = sum(body.cost for body in bodies) + 2
        cost = iterated.cost + count * step
        if name in ("all", "exists", "exists_one", "filter") or (name == "map" and len(bodies) == 2):
            predicate = bodies[0]
            if not _is(predicate.type, "bool"):
                return self.no_overload(node, column, "_&&_" if name == "all" else "_||_", BOOL, predicate.type)
        if name == "map":
            return _Typed(list_of(bodies[-1].type, count), cost)
        if name == "filter":
            return _Typed(list_of(element, count), cost)
        return _Typed(BOOL, cost)

    @staticmethod
    def _identifier(node: lark.Tree) -> str | None:
        values = list(node.scan_values(lambda value: isinstance(value, lark.Token)))
        idents = [subtree for subtree in node.iter_subtrees() if subtree.data == "ident"]
        if len(values) == 1 and len(idents) == 1:
            return str(values[0])
        return None

    def _ident_arg(self, node: lark.Tree) -> _Typed:
        name_token, *rest = node.children
        name = str(name_token)
        argument_nodes = self._arguments(rest[0] if rest else None)
        column = node.meta.column + len(name)
        if name == "has":
            return self._has(node, argument_nodes)
        arguments = [self.visit(argument) for argument in argument_nodes]
        cost = sum(argument.cost for argument in arguments) + 1
        types = [argument.type for argument in arguments]
        if name == "size" and len(types) == 1 and _is(types[0], "string", "bytes", "list", "map"):
            return _Typed(INT, cost)
        if name in _CONVERSIONS and len(types) == 1:
            return _Typed(_CONVERSIONS[name], cost + (_string_cost(types[0]) if types[0].kind == "string" else 0))
        if name == "matches" and len(types) == 2 and all(_is(t, "string") for t in types):
            return _Typed(BOOL, cost + self._regex_cost(types[0], types[1]))
        if name == "type" and len(types) == 1:
            return _Typed(TYPE, cost)
        if name in ("quantity", "url", "ip", "cidr") and len(types) == 1 and _is(types[0], "string"):
            return _Typed(DYN, cost + _string_cost(types[0]))
        if name in ("isQuantity", "isURL", "isIP", "isCIDR") and len(types) == 1 and _is(types[0], "string"):
            return _Typed(BOOL, cost + _string_cost(types[0]))
        if name in ("size", "matches", *_CONVERSIONS):
            return self.no_overload(node, column, name, *types)
        return self.error(_meta(node, "line"), node.meta.column, f"undeclared reference to '{name}' (in container '')")

    def _has(self, node: lark.Tree, argument_nodes: list[lark.Tree]) -> _Typed:
        selection = self._unwrap(argument_nodes[0]) if len(argument_nodes) == 1 else None
        if selection is None or selection.data != "member_dot":
            return self.error(_meta(node, "line"), node.meta.column + 3, "invalid argument to has() macro")
        operand_node, name_token = selection.children
        operand = self.visit(operand_node)
        column = selection.meta.end_column - len(str(name_token)) - 1
        return self._select(selection, operand, str(name_token), column, test_only=True)

    @staticmethod
    def _unwrap(node: lark.Tree) -> lark.Tree | None:
        """The one member expression an argument consists of (through the grammar's single-child levels)."""
        while isinstance(node, lark.Tree) and len(node.children) == 1 and node.data not in ("member_dot", "ident"):
            node = node.children[0]
        return node if isinstance(node, lark.Tree) else None

    @staticmethod
    def _regex_cost(text: CelType, pattern: CelType) -> int:
        scan = math.ceil(STRING_TRAVERSAL_FACTOR * (text.size + 1))
        return scan * max(1, math.ceil(REGEX_LENGTH_FACTOR * pattern.size))

    def _method(self, node: lark.Tree, column: int, name: str, receiver: _Typed,
                arguments: list[_Typed]) -> _Typed:
        target = receiver.type
        types = [argument.type for argument in arguments]
        cost = receiver.cost + sum(argument.cost for argument in arguments) + 1
        result = self._method_result(name, target, types)
        if result is None:
            return self.no_overload(node, column, name, target, *types)
        result_type, own_cost = result
        return _Typed(result_type, cost + own_cost)

    def _method_result(self, name: str, target: CelType, args: list[CelType]) -> tuple[CelType, int] | None:
        if target.kind == "optional":
            inner = target.params[0]
            if name == "hasValue" and not args:
                return BOOL, 0
            if name == "value" and not args:
                return inner, 0
            if name == "orValue" and len(args) == 1 and _assignable(args[0], inner):
                return inner, 0
            if name == "or" and len(args) == 1 and args[0].kind in ("optional", "dyn"):
                return target, 0
            return None
        if target.kind in ("dyn", "error"):
            return DYN, 1
        if name == "size" and not args and target.kind in ("string", "bytes", "list", "map"):
            return INT, 0
        if target.kind == "string":
            return self._string_method(name, target, args)
        if target.kind == "list":
            return self._list_method(name, target, args)
        return None

    def _string_method(self, name: str, target: CelType, args: list[CelType]) -> tuple[CelType, int] | None:
        strings = all(_is(arg, "string") for arg in args)
        ints = all(_is(arg, "int") for arg in args)
        if name in ("startsWith", "endsWith") and len(args) == 1 and strings:
            return BOOL, _string_cost(args[0])
        if name == "contains" and len(args) == 1 and strings:
            return BOOL, math.ceil(STRING_TRAVERSAL_FACTOR * target.size * max(args[0].size, 1))
        if name == "matches" and len(args) == 1 and strings:
            return BOOL, self._regex_cost(target, args[0])
        if name in ("find",) and len(args) == 1 and strings:
            return simple("string", target.size), self._regex_cost(target, args[0])
        if name == "findAll" and 1 <= len(args) <= 2 and _is(args[0], "string"):
            return list_of(simple("string", target.size), target.size), self._regex_cost(target, args[0])
        if name in ("lowerAscii", "upperAscii", "trim") and not args:
            return simple("string", target.size), _string_cost(target)
        if name in ("indexOf", "lastIndexOf") and 1 <= len(args) <= 2 and _is(args[0], "string") \
                and all(_is(arg, "int") for arg in args[1:]):
            return INT, _string_cost(target)
        if name == "charAt" and len(args) == 1 and ints:
            return simple("string", 1), _string_cost(target)
        if name == "substring" and 1 <= len(args) <= 2 and ints:
            return simple("string", target.size), _string_cost(target)
        if name == "replace" and 2 <= len(args) <= 3 and all(_is(arg, "string") for arg in args[:2]) \
                and all(_is(arg, "int") for arg in args[2:]):
            return simple("string", target.size), _string_cost(target)
        if name == "split" and 1 <= len(args) <= 2 and _is(args[0], "string"):
            return list_of(simple("string", target.size), target.size), _string_cost(target)
        if name == "format" and len(args) == 1 and _is(args[0], "list"):
            return simple("string", UNBOUNDED_STRING), _string_cost(target)
        return None

    @staticmethod
    def _list_method(name: str, target: CelType, args: list[CelType]) -> tuple[CelType, int] | None:
        element = target.params[0]
        if name == "join" and len(args) <= 1 and _is(element, "string") and all(_is(a, "string") for a in args):
            return simple("string", UNBOUNDED_STRING), math.ceil(STRING_TRAVERSAL_FACTOR * target.size * element.size)
        if name in ("isSorted",) and not args and element.kind in _ORDERED | {"dyn"}:
            return BOOL, target.size
        if name in ("sum", "min", "max") and not args and element.kind in _NUMERIC | {"dyn", "duration"}:
            return element, target.size
        if name in ("indexOf", "lastIndexOf") and len(args) == 1 and _assignable(args[0], element):
            return INT, target.size
        return None

    # -- leaves --

    def _ident(self, node: lark.Tree) -> _Typed:
        name = str(node.children[0])
        if name == "oldSelf":
            self.uses_old_self = True
        found = self.lookup(name)
        if found is None and name in _TYPE_NAMES:
            return _Typed(TYPE, 0)
        if found is None:
            return self.error(_meta(node, "line"), node.meta.column, f"undeclared reference to '{name}' (in container '')")
        return _Typed(found, 1)

    def _dot_ident(self, node: lark.Tree) -> _Typed:
        return self._ident(node)

    def _dot_ident_arg(self, node: lark.Tree) -> _Typed:
        return self._ident_arg(node)

    def _paren_expr(self, node: lark.Tree) -> _Typed:
        return self.visit(node.children[0])

    def _literal(self, node: lark.Tree) -> _Typed:
        token = node.children[0]
        text = str(token)
        kinds = {"INT_LIT": INT, "UINT_LIT": UINT, "FLOAT_LIT": DOUBLE, "BOOL_LIT": BOOL, "NULL_LIT": NULL}
        if token.type in kinds:
            return _Typed(kinds[token.type], 0)
        body = text.lstrip("bBrR")
        quote = 3 if body[:3] in ('"""', "'''") else 1
        size = max(len(body) - 2 * quote, 0)
        return _Typed(simple("bytes" if token.type == "BYTES_LIT" else "string", size), 0)

    def _list_lit(self, node: lark.Tree) -> _Typed:
        items = [self.visit(child) for child in self._arguments(node.children[0] if node.children else None)]
        element = items[0].type if items and all(_assignable(i.type, items[0].type) for i in items) else DYN
        if element.kind == "string" and items:
            element = simple("string", max(i.type.size for i in items))
        return _Typed(list_of(element, len(items)), LIST_CREATE_COST + sum(i.cost for i in items))

    def _map_lit(self, node: lark.Tree) -> _Typed:
        parts = [self.visit(child) for child in self._arguments(node.children[0] if node.children else None)]
        keys, values = parts[0::2], parts[1::2]
        key = keys[0].type if keys and all(_assignable(k.type, keys[0].type) for k in keys) else DYN
        value = values[0].type if values and all(_assignable(v.type, values[0].type) for v in values) else DYN
        if value.kind == "string" and values:
            value = simple("string", max(v.type.size for v in values))
        return _Typed(map_of(key, value, len(keys)), MAP_CREATE_COST + sum(p.cost for p in parts))
