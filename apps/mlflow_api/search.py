"""MLflow's search syntax for runs and experiments, parsed by hand into Django Q objects and
orderings over the portal's tables (the run row, its metric summaries, param and tag rows).

    metrics.rmse < 0.8 and params.model = 'rf' and tags.`mlflow.source.type` LIKE 'LOC%'
    attributes.status = 'FINISHED' and attributes.start_time > 1700000000000
    attributes.run_id IN ('12', '13')

Clauses are joined by AND (MLflow has no OR). Metrics compare their latest value as numbers
(= != < <= > >=); params, tags and text attributes compare as text (= != LIKE ILIKE IN NOT IN;
tags also IS NULL / IS NOT NULL). Orderings: `metrics.rmse DESC`, `params.lr`, `tags.t ASC`,
`attributes.start_time DESC`, ... Nothing is evaluated as code: anything else is a SearchError
(INVALID_PARAMETER_VALUE) naming where and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import F, OuterRef, Q, Subquery, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from apps.experiments.models import Experiment, RunMetricSummary, RunParam, RunTag
from apps.mlflow_api.convert import STATUS_FROM_MLFLOW, from_ms

MAX_FILTER_LENGTH = 4000
MAX_CLAUSES = 50
MAX_ORDER_BY = 10

TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<qident>[A-Za-z_]+\.(?:`[^`]*`|"[^"]*"))
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<kw>(?:NOT\s+)?I?LIKE\b|NOT\s+IN\b|IN\b|IS\s+NOT\s+NULL\b|IS\s+NULL\b|AND\b)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<ident>[A-Za-z_][\w\-/:.]*)
    """,
    re.VERBOSE | re.IGNORECASE,
)
PREFIXES = {
    "metric": "metrics", "metrics": "metrics",
    "param": "params", "params": "params", "parameter": "params", "parameters": "params",
    "tag": "tags", "tags": "tags",
    "attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes",
}  # fmt: skip
TEXT_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=")
LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


class SearchError(ValueError):
    """A filter or order_by MLflow's syntax does not describe; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise SearchError(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise SearchError("The filter holds a NUL character or invalid Unicode.")
    tokens, pos = [], 0
    while pos < len(text):
        match = TOKEN_RE.match(text, pos)
        if match is None:
            raise SearchError(f"Cannot read the filter at position {pos + 1}: {text[pos : pos + 20]!r}.")
        kind, value = match.lastgroup, match.group()
        if kind != "ws":
            if kind == "kw":
                value = " ".join(value.upper().split())
                kind = "and" if value == "AND" else "op"
            elif kind == "op":
                value = {"==": "=", "<>": "!="}.get(value, value)
            tokens.append(Token(kind, value, pos + 1))
        pos = match.end()
    return tokens


def split_identifier(text: str, pos: int = 1, default: str = "attributes") -> tuple[str, str]:
    """('metrics'|'params'|'tags'|'attributes', key) for `metrics.loss`, tags.`a b`, run_name."""
    head, dot, rest = text.partition(".")
    if dot and head.lower() in PREFIXES:
        if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in '`"':
            rest = rest[1:-1]
        if not rest:
            raise SearchError(f"At position {pos}: {head}. needs a key after the dot.")
        return PREFIXES[head.lower()], rest
    if dot:
        raise SearchError(
            f"At position {pos}: unknown entity {head!r}; use metrics., params., tags. or attributes. "
            "(datasets are not supported)."
        )
    return default, text


def unquote(token: Token) -> str:
    body = token.text[1:-1]
    if token.text[0] == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body)


def like_regex(pattern: str) -> str:
    """SQL LIKE (% any run, _ one character) as an anchored regular expression."""
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return "^" + "".join(parts) + "$"


class _Clauses:
    """Reads `<identifier> <op> <value>` clauses joined by AND, handing each to `build(entity,
    key, op, value, pos)`; a value is a float, a str, a tuple of str (IN) or None (IS NULL)."""

    def __init__(self, text: str, build):
        self.tokens = tokenize(text)
        self.i = 0
        self.build = build

    def take(self, expected: str) -> Token:
        if self.i >= len(self.tokens):
            raise SearchError(f"The filter ends too early: expected {expected}.")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Q:
        q, count = Q(), 0
        while self.i < len(self.tokens):
            if count:
                token = self.take("AND")
                if token.kind != "and":
                    raise SearchError(f"At position {token.pos} ({token.text!r}): expected AND (OR is not supported).")
            count += 1
            if count > MAX_CLAUSES:
                raise SearchError(f"At most {MAX_CLAUSES} clauses per filter.")
            q &= self.clause()
        return q

    def clause(self) -> Q:
        ident = self.take("an identifier such as metrics.loss")
        if ident.kind not in ("ident", "qident"):
            raise SearchError(f"At position {ident.pos} ({ident.text!r}): expected an identifier such as metrics.loss.")
        entity, key = split_identifier(ident.text, ident.pos)
        op_token = self.take(f"a comparison after {ident.text}")
        if op_token.kind != "op":
            raise SearchError(f"At position {op_token.pos} ({op_token.text!r}): expected a comparison operator.")
        op = op_token.text
        if op in ("IS NULL", "IS NOT NULL"):
            return self.build(entity, key, op, None, op_token.pos)
        if op in ("IN", "NOT IN"):
            return self.build(entity, key, op, self.values(), op_token.pos)
        token = self.take(f"a value after {ident.text} {op}")
        if token.kind == "number":
            return self.build(entity, key, op, float(token.text), token.pos)
        if token.kind == "string":
            return self.build(entity, key, op, unquote(token), token.pos)
        raise SearchError(f"At position {token.pos} ({token.text!r}): expected a number or a quoted string.")

    def values(self) -> tuple[str, ...]:
        opening = self.take("'(' with quoted values")
        if opening.kind != "lparen":
            raise SearchError(f"At position {opening.pos}: IN takes a list such as ('a', 'b').")
        values = []
        while True:
            token = self.take("a quoted value")
            if token.kind != "string":
                raise SearchError(f"At position {token.pos} ({token.text!r}): IN lists hold quoted strings.")
            values.append(unquote(token))
            token = self.take("',' or ')'")
            if token.kind == "rparen":
                return tuple(values)
            if token.kind != "comma":
                raise SearchError(f"At position {token.pos} ({token.text!r}): expected ',' or ')'.")


def _text_lookup(field: str, op: str, value, pos: int, label: str) -> Q:
    if op not in TEXT_OPS:
        raise SearchError(f"At position {pos}: {label} compares as text: use one of {', '.join(TEXT_OPS)}.")
    if op in ("IN", "NOT IN"):
        q = Q(**{f"{field}__in": list(value)})
        return ~q if op == "NOT IN" else q
    if not isinstance(value, str):
        raise SearchError(f"At position {pos}: {label} is text; quote the value, e.g. {label} = '{value:g}'.")
    if op == "=":
        return Q(**{field: value})
    if op == "!=":
        return ~Q(**{field: value})
    lookup = "iregex" if op.endswith("ILIKE") else "regex"
    q = Q(**{f"{field}__{lookup}": like_regex(value)})
    return ~q if op.startswith("NOT") else q


def _number(value, pos: int, label: str) -> float:
    if not isinstance(value, float):
        raise SearchError(f"At position {pos}: {label} is a number; compare it with a number, not text.")
    return value


# --- runs -----------------------------------------------------------------------------------
RUN_TEXT_ATTRIBUTES = {"run_name": "name", "user_id": "owner__username"}
RUN_TIME_ATTRIBUTES = {"start_time": "started_at", "created": "started_at", "end_time": "ended_at"}


def _run_clause(entity: str, key: str, op: str, value, pos: int) -> Q:
    label = f"{entity}.{key}"
    if entity == "metrics":
        if op not in NUMBER_OPS:
            raise SearchError(f"At position {pos}: metrics compare as numbers: use one of {', '.join(NUMBER_OPS)}.")
        rows = RunMetricSummary.objects.filter(key=key)
        number = _number(value, pos, label)
        if op == "!=":
            return Q(pk__in=rows.exclude(last=number).values("run_id"))
        return Q(pk__in=rows.filter(**{f"last__{LOOKUPS[op]}": number}).values("run_id"))
    if entity in ("params", "tags"):
        rows = (RunParam if entity == "params" else RunTag).objects.filter(key=key)
        if op in ("IS NULL", "IS NOT NULL"):
            q = Q(pk__in=rows.values("run_id"))
            return ~q if op == "IS NULL" else q
        return Q(pk__in=rows.filter(_text_lookup("value", op, value, pos, label)).values("run_id"))
    return _run_attribute(key.lower(), op, value, pos)


def _run_attribute(name: str, op: str, value, pos: int) -> Q:
    if name in RUN_TEXT_ATTRIBUTES:
        return _text_lookup(RUN_TEXT_ATTRIBUTES[name], op, value, pos, f"attributes.{name}")
    if name in ("run_id", "run_uuid", "id"):
        if op not in ("=", "!=", "IN", "NOT IN"):
            raise SearchError(f"At position {pos}: run_id takes = != IN NOT IN.")
        ids = [int(v) for v in ((value,) if isinstance(value, str) else value) if str(v).isdigit() and len(v) < 19]
        q = Q(pk__in=ids)
        return ~q if op in ("!=", "NOT IN") else q
    if name == "status":
        if op not in ("=", "!=", "IN", "NOT IN"):
            raise SearchError(f"At position {pos}: status takes = != IN NOT IN.")
        wanted = [value] if isinstance(value, str) else list(value)
        unknown = [v for v in wanted if v.upper() not in STATUS_FROM_MLFLOW]
        if unknown:
            raise SearchError(
                f"At position {pos}: status is one of {', '.join(STATUS_FROM_MLFLOW)}; got {unknown[0]!r}."
            )
        q = Q(status__in=[STATUS_FROM_MLFLOW[v.upper()] for v in wanted])
        return ~q if op in ("!=", "NOT IN") else q
    if name in RUN_TIME_ATTRIBUTES:
        if op not in NUMBER_OPS:
            raise SearchError(f"At position {pos}: {name} compares as a number of milliseconds.")
        number = _number(value, pos, f"attributes.{name}")
        try:
            when = from_ms(number)
        except (OverflowError, ValueError, OSError):
            raise SearchError(f"At position {pos}: {name} {number:g} is out of range.") from None
        field = RUN_TIME_ATTRIBUTES[name]
        return ~Q(**{field: when}) if op == "!=" else Q(**{f"{field}__{LOOKUPS[op]}": when})
    if name == "lifecycle_stage":
        return _lifecycle(op, value, pos)
    raise SearchError(
        f"At position {pos}: unknown attribute {name!r}; use run_name, run_id, status, user_id, start_time or end_time."
    )


def _lifecycle(op: str, value, pos: int) -> Q:
    """Every stored run is active (a deleted run is gone)."""
    values = [value] if isinstance(value, str) else list(value or ())
    if op not in ("=", "!=", "IN", "NOT IN"):
        raise SearchError(f"At position {pos}: lifecycle_stage takes = != IN NOT IN.")
    matches = "active" in [v.lower() for v in values]
    if op in ("!=", "NOT IN"):
        matches = not matches
    return Q() if matches else Q(pk__in=[])


def run_filter(text: str | None) -> Q:
    """Q over runs for an MLflow filter string; raises SearchError."""
    if not text or not text.strip():
        return Q()
    return _Clauses(text, _run_clause).parse()


def _order_parts(text: str) -> tuple[str, bool]:
    """(identifier, descending) for 'metrics.loss DESC' (keys with spaces go in backticks)."""
    tokens = tokenize(text)
    descending = False
    if len(tokens) == 2 and tokens[1].kind == "ident" and tokens[1].text.upper() in ("ASC", "DESC"):
        descending = tokens[1].text.upper() == "DESC"
        tokens = tokens[:1]
    if len(tokens) != 1 or tokens[0].kind not in ("ident", "qident"):
        raise SearchError(
            f"Cannot read order_by {text[:100]!r}: use an identifier and ASC or DESC, e.g. 'metrics.loss DESC'."
        )
    return tokens[0].text, descending


def _order_entries(order_by: list, example: str):
    """(identifier, descending) per order_by entry, after MLflow's limits on the list."""
    if len(order_by) > MAX_ORDER_BY:
        raise SearchError(f"At most {MAX_ORDER_BY} order_by entries.")
    for entry in order_by:
        if not isinstance(entry, str):
            raise SearchError(f"order_by entries are strings such as {example}.")
        yield _order_parts(entry)


def run_ordering(order_by: list[str]) -> list:
    """Order expressions for MLflow order_by entries, then MLflow's own tie-breakers (newest first)."""
    ordering = []
    for ident, descending in _order_entries(order_by, "'metrics.loss DESC'"):
        entity, key = split_identifier(ident)
        if entity == "metrics":
            expr = Subquery(RunMetricSummary.objects.filter(run_id=OuterRef("pk"), key=key).values("last")[:1])
        elif entity in ("params", "tags"):
            rows = (RunParam if entity == "params" else RunTag).objects.filter(run_id=OuterRef("pk"), key=key)
            expr = Subquery(rows.values("value")[:1])
        else:
            name = key.lower()
            field = {**RUN_TEXT_ATTRIBUTES, **RUN_TIME_ATTRIBUTES, "status": "status", "run_id": "id"}.get(name)
            if field is None:
                raise SearchError(f"Cannot order by {ident!r}: use metrics.*, params.*, tags.* or a run attribute.")
            expr = F(field)
        ordering.append(expr.desc(nulls_last=True) if descending else expr.asc(nulls_last=True))
    return [*ordering, F("started_at").desc(nulls_last=True), "-id"]


# --- experiments ---------------------------------------------------------------------------
EXPERIMENT_TIMES = {"creation_time": "created_at", "last_update_time": "updated_at"}


def _experiment_clause(entity: str, key: str, op: str, value, pos: int) -> Q:
    if entity == "tags":
        field = "mlflow_tag_text"
        if op in ("IS NULL", "IS NOT NULL"):
            q = Q(tags__has_key=key)
            return ~q if op == "IS NULL" else q
        return Q(tags__has_key=key) & _annotated(field, key, _text_lookup(field, op, value, pos, f"tags.{key}"))
    if entity != "attributes":
        raise SearchError(f"At position {pos}: experiments are searched by name, tags and times, not {entity}.")
    name = key.lower()
    if name == "name":
        return _text_lookup("name", op, value, pos, "name")
    if name == "experiment_id":
        return _run_attribute("run_id", op, value, pos)
    if name in EXPERIMENT_TIMES:
        number = _number(value, pos, name)
        if op not in NUMBER_OPS:
            raise SearchError(f"At position {pos}: {name} compares as a number of milliseconds.")
        field = EXPERIMENT_TIMES[name]
        return ~Q(**{field: from_ms(number)}) if op == "!=" else Q(**{f"{field}__{LOOKUPS[op]}": from_ms(number)})
    raise SearchError(
        f"At position {pos}: unknown experiment attribute {name!r}; use name, creation_time or last_update_time."
    )


def _annotated(field: str, key: str, q: Q) -> Q:
    """A Q on a tag's text: the lookup goes through a subquery on the JSON key."""
    # Cast: a key transform's own `exact` would compare the value as JSON, not as text
    rows = Experiment.objects.annotate(**{field: Cast(KeyTextTransform(key, "tags"), TextField())}).filter(q)
    return Q(pk__in=rows.values("pk"))


def experiment_filter(text: str | None) -> Q:
    if not text or not text.strip():
        return Q()
    return _Clauses(text, _experiment_clause).parse()


def experiment_ordering(order_by: list[str]) -> list:
    ordering = []
    for ident, descending in _order_entries(order_by, "'name ASC'"):
        _, key = split_identifier(ident)
        field = {"name": "name", "experiment_id": "id", **EXPERIMENT_TIMES}.get(key.lower())
        if field is None:
            raise SearchError(
                f"Cannot order experiments by {ident!r}: use name, experiment_id, creation_time, last_update_time."
            )
        ordering.append(F(field).desc() if descending else F(field).asc())
    return [*ordering, F("created_at").desc(), "-id"] if not ordering else [*ordering, "id"]
