"""The runs-table filter language: a hand-written tokenizer and parser that build Django Q objects.

    metrics.val_acc > 0.9 and params.lr < 0.01
    (status = 'finished' or status = "running") and tags.team != 'vision'
    metrics.`val/acc` >= 0.5

Identifiers: `metrics.<key>`, `params.<key>`, `tags.<key>`, and run attributes (`name`, `status`,
`source`, `code_version`, `progress`, also as `attributes.<name>`). Keys with unusual characters
go in backticks. Operators: = != < <= > >=. Values: numbers and quoted strings. Combine with
`and`, `or` (and binds tighter) and parentheses. Nothing is ever evaluated as code: anything the
grammar does not describe is refused with the position and what was expected.

Sorting uses the same identifiers (`-metrics.val_acc` for descending).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import F, FilteredRelation, Q, QuerySet

from apps.experiments.models import Run, RunMetricSummary, RunParam, RunTag
from apps.experiments.validation import check_key

MAX_FILTER_LENGTH = 2000
MAX_CLAUSES = 40
MAX_DEPTH = 10  # nested parentheses: the parser recurses per level, so deeper input is refused
LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
ATTRIBUTES = {
    "name": "text",
    "status": "choice",
    "source": "choice",
    "code_version": "text",
    "progress": "number",
    "id": "number",
}
EXAMPLE = "Example: metrics.val_acc > 0.9 and params.lr < 0.01"

TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<op><=|>=|!=|==|=|<|>)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<ident>(?:[A-Za-z_][A-Za-z0-9_]*)(?:\.(?:`[^`]+`|[A-Za-z0-9_\-/:]+(?:\.[A-Za-z0-9_\-/:]+)*))?)
    """,
    re.VERBOSE,
)


class FilterError(ValueError):
    """A filter or sort expression that cannot be understood; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"The filter is longer than {MAX_FILTER_LENGTH} characters; simplify it.")
    tokens, pos = [], 0
    while pos < len(text):
        match = TOKEN_RE.match(text, pos)
        if match is None:
            raise FilterError(
                f"Cannot read the filter at position {pos + 1} ({text[pos : pos + 12]!r}). "
                f"Quote text values ('adam'), use = != < <= > >= and, or, parentheses. {EXAMPLE}"
            )
        kind = match.lastgroup
        if kind != "ws":
            value = match.group()
            if kind == "op" and value == "==":
                value = "="
            if kind == "ident" and value.lower() in ("and", "or"):
                kind = value.lower()
            tokens.append(Token(kind, value, pos + 1))
        pos = match.end()
    return tokens


@dataclass(frozen=True, slots=True)
class Field:
    kind: str  # metrics | params | tags | attribute
    name: str

    @property
    def label(self) -> str:
        return self.name if self.kind == "attribute" else f"{self.kind}.{self.name}"


def parse_field(text: str, pos: int = 1) -> Field:
    head, dot, rest = text.partition(".")
    head_l = head.lower()
    if not dot:
        if head_l in ATTRIBUTES:
            return Field("attribute", head_l)
        raise FilterError(
            f"Unknown name {text!r} at position {pos}: use metrics.<key>, params.<key>, tags.<key> "
            f"or one of {', '.join(sorted(ATTRIBUTES))}."
        )
    if rest.startswith("`") and rest.endswith("`"):
        rest = rest[1:-1]
    if head_l in ("attribute", "attributes", "attr", "run"):
        return parse_field(rest, pos)
    if head_l in ("metric", "metrics", "param", "params", "parameter", "parameters", "tag", "tags"):
        problem = check_key(rest)
        if problem:
            raise FilterError(f"At position {pos}: {problem}.")
        kind = {"m": "metrics", "p": "params", "t": "tags"}[head_l[0]]
        return Field(kind, rest)
    raise FilterError(f"Unknown prefix {head!r} at position {pos}: use metrics., params., tags. or attributes.")


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.i = 0
        self.clauses = 0
        self.depth = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, expected: str) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError(f"The filter ends too early: expected {expected}. {EXAMPLE}")
        if token.kind != kind:
            raise FilterError(f"At position {token.pos} ({token.text!r}): expected {expected}.")
        self.i += 1
        return token

    def parse(self) -> Q:
        q = self.expr()
        token = self.peek()
        if token is not None:
            raise FilterError(f"At position {token.pos} ({token.text!r}): expected 'and', 'or' or the end.")
        return q

    def expr(self) -> Q:
        q = self.conjunction()
        while (token := self.peek()) is not None and token.kind == "or":
            self.i += 1
            q = q | self.conjunction()
        return q

    def conjunction(self) -> Q:
        q = self.term()
        while (token := self.peek()) is not None and token.kind == "and":
            self.i += 1
            q = q & self.term()
        return q

    def term(self) -> Q:
        token = self.peek()
        if token is not None and token.kind == "lparen":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(
                    f"At position {token.pos}: at most {MAX_DEPTH} nested parentheses; simplify the filter."
                )
            self.i += 1
            q = self.expr()
            self.take("rparen", "')' to close the '(' opened before")
            self.depth -= 1
            return q
        return self.comparison()

    def comparison(self) -> Q:
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise FilterError(f"At most {MAX_CLAUSES} comparisons per filter.")
        ident = self.take("ident", "a name such as metrics.val_acc, params.lr, tags.team or status")
        field = parse_field(ident.text, ident.pos)
        op = self.take("op", f"an operator (= != < <= > >=) after {ident.text}").text
        value_token = self.peek()
        if value_token is None or value_token.kind not in ("number", "string"):
            where = f"at position {value_token.pos}" if value_token else "at the end"
            raise FilterError(f"Expected a number or a quoted string after {ident.text} {op} ({where}).")
        self.i += 1
        if value_token.kind == "number":
            value: float | str = float(value_token.text)
        else:
            value = re.sub(r"\\(.)", r"\1", value_token.text[1:-1])
        return build_q(field, op, value, value_token.pos)


def build_q(field: Field, op: str, value: float | str, pos: int) -> Q:
    number = isinstance(value, float)
    if field.kind == "metrics":
        if not number:
            raise FilterError(f"At position {pos}: {field.label} is a number; compare it with a number, not text.")
        rows = RunMetricSummary.objects.filter(key=field.name)
        if op == "!=":
            return Q(pk__in=rows.exclude(last=value).filter(last__isnull=False).values("run_id"))
        return Q(pk__in=rows.filter(**{f"last__{LOOKUPS[op]}": value}).values("run_id"))
    if field.kind == "params":
        rows = RunParam.objects.filter(key=field.name)
        if number:
            if op == "!=":
                return Q(pk__in=rows.exclude(value_num=value).values("run_id"))
            return Q(pk__in=rows.filter(**{f"value_num__{LOOKUPS[op]}": value}).values("run_id"))
        return _text_q(field, op, value, pos, rows)
    if field.kind == "tags":
        if number:
            value = _number_text(value)
        return _text_q(field, op, value, pos, RunTag.objects.filter(key=field.name))
    kind = ATTRIBUTES[field.name]
    if kind == "number":
        if not number:
            raise FilterError(f"At position {pos}: {field.name} is a number; compare it with a number.")
        return ~Q(**{field.name: value}) if op == "!=" else Q(**{f"{field.name}__{LOOKUPS[op]}": value})
    if number:
        raise FilterError(f"At position {pos}: quote text values, e.g. {field.name} = '{_number_text(value)}'.")
    if op not in ("=", "!="):
        raise FilterError(f"At position {pos}: {field.name} can only be compared with = or !=.")
    if kind == "choice":
        choices = Run.Status.values if field.name == "status" else Run.Source.values
        if value not in choices:
            raise FilterError(f"At position {pos}: {field.name} is one of {', '.join(choices)}; got {value!r}.")
    return ~Q(**{field.name: value}) if op == "!=" else Q(**{field.name: value})


def _text_q(field: Field, op: str, value: str, pos: int, rows: QuerySet) -> Q:
    if op not in ("=", "!="):
        raise FilterError(
            f"At position {pos}: text values can only be compared with = or !=; "
            f"to compare {field.label} as a number, write the number without quotes."
        )
    if op == "!=":
        return Q(pk__in=rows.exclude(value=value).values("run_id"))
    return Q(pk__in=rows.filter(value=value).values("run_id"))


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def parse_filter(text: str | None) -> Q:
    """Q for the runs matching `text`; an empty filter matches everything. Raises FilterError."""
    if text is None or not text.strip():
        return Q()
    tokens = tokenize(text)
    return _Parser(tokens).parse()


def apply_sort(queryset: QuerySet, sort: str | None) -> QuerySet:
    """Order runs by an attribute, a metric's latest value or a param (missing values last)."""
    sort = (sort or "").strip()
    if not sort:
        return queryset.order_by("-created_at", "-id")
    descending = sort.startswith("-")
    field = parse_field(sort.lstrip("-+"))
    if field.kind == "metrics":
        queryset = queryset.annotate(
            sort_metric=FilteredRelation("metric_summaries", condition=Q(metric_summaries__key=field.name))
        )
        expression = F("sort_metric__last")
    elif field.kind == "params":
        queryset = queryset.annotate(sort_param=FilteredRelation("param_rows", condition=Q(param_rows__key=field.name)))
        num, text = F("sort_param__value_num"), F("sort_param__value")
        order = [
            num.desc(nulls_last=True) if descending else num.asc(nulls_last=True),
            text.desc(nulls_last=True) if descending else text.asc(nulls_last=True),
        ]
        return queryset.order_by(*order, "-id")
    elif field.kind == "tags":
        queryset = queryset.annotate(sort_tag=FilteredRelation("tag_rows", condition=Q(tag_rows__key=field.name)))
        expression = F("sort_tag__value")
    else:
        expression = F(field.name)
    ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    return queryset.order_by(ordered, "-id")
