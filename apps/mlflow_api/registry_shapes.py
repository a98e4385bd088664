"""The model registry's translation between MLflow and the catalog: JSON in MLflow's spelling,
version sources (which run artifact a `source` URI names), search filters and paging.

Pure functions over already-fetched objects and the caller's parameters: no permission decisions
and no queries of their own (registry.py calls the selectors and services).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q

from apps.catalog.api.serializers import version_api_url
from apps.catalog.selectors import has_tag
from apps.mlflow_api.protocol import MlflowError, invalid

# --- JSON in MLflow's spelling ------------------------------------------------------------------


def millis(moment) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def slug_tags(tags) -> list[dict]:
    """The catalog's slug tags as MLflow's key/value tags (the value is empty: docs/MLFLOW.md)."""
    return [{"key": tag, "value": ""} for tag in tags or []]


def tags_from_mlflow(tags, field: str = "tags") -> list[str]:
    """MLflow's `[{"key", "value"}]` as catalog tags: `key`, or `key.value` when there is a value
    (the catalog validates them: lowercase slugs of up to 40 characters)."""
    if tags in (None, ""):
        return []
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise invalid(f'Give \'{field}\' as a list of {{"key": ..., "value": ...}} objects.')
    out = []
    for tag in tags:
        key, value = tag.get("key"), tag.get("value")
        if not isinstance(key, str) or not key or not isinstance(value, str | type(None)):
            raise invalid(f"Each of '{field}' needs a string 'key' (and a string 'value').")
        out.append(f"{key}.{value}" if value else key)
    return out


def version_source(version, request) -> str:
    """MLflow's `source`: the run artifact the version was registered from, else (a version made in
    the portal) the absolute URL of the catalog's own download."""
    if version.source:
        return version.source
    return request.build_absolute_uri(version_api_url(version.model.name, version.version) + "artifact")


def download_uri(version, request) -> str:
    """Where the client downloads the version: the folder of the source (a source naming the .onnx
    file itself answers its folder, as MLflow's clients read a model as a folder)."""
    source = version_source(version, request)
    if version.source and source.lower().endswith(".onnx"):
        return source.rsplit("/", 1)[0]
    return source


def model_version_json(version, request) -> dict:
    return {
        "name": version.model.name,
        "version": str(version.version),
        "creation_timestamp": millis(version.created_at),
        "last_updated_timestamp": millis(version.created_at),
        "user_id": version.created_by.username,
        "current_stage": "None",
        "description": version.description,
        "source": version_source(version, request),
        "run_id": version.run_id,
        "status": "READY",
        "tags": slug_tags(version.tags),
        "aliases": sorted(alias.name for alias in version.aliases.all()),
    }


def registered_model_json(model, request, *, latest, aliases) -> dict:
    """`latest`: the model's newest version (or None); `aliases`: [(name, version number)]."""
    return {
        "name": model.name,
        "creation_timestamp": millis(model.created_at),
        "last_updated_timestamp": millis(model.updated_at),
        "user_id": model.owner.username,
        "description": model.description,
        "latest_versions": [model_version_json(latest, request)] if latest is not None else [],
        "tags": slug_tags(model.tags),
        "aliases": [{"alias": name, "version": str(number)} for name, number in aliases],
    }


# --- version sources ------------------------------------------------------------------------------

# The artifact proxy's URIs: mlflow-artifacts:/<experiment>/<run>/artifacts/<path> (optionally with
# the host, mlflow-artifacts://host:port/...), the same over HTTP, and runs:/<run>/<path>.
_PROXIED = re.compile(r"^mlflow-artifacts:(?://[^/]*)?/+(?P<exp>[^/]+)/(?P<run>[^/]+)/artifacts(?:/(?P<path>.*))?$")
_HTTP = re.compile(
    r"^https?://[^/]+/(?:ajax-)?api/2\.0/mlflow-artifacts/artifacts/"
    r"(?P<exp>[^/]+)/(?P<run>[^/]+)/artifacts(?:/(?P<path>.*))?$"
)
_RUNS = re.compile(r"^runs:/+(?P<run>[^/]+)(?:/(?P<path>.*))?$")
SOURCE_HELP = (
    "Give the source as a run's ONNX artifact: runs:/<run_id>/<path> or "
    "mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<path>, naming a .onnx file or a folder holding one."
)


@dataclass(frozen=True)
class Source:
    run_id: str
    experiment_id: str | None  # None for runs:/ URIs, which do not name it
    path: str  # relative to the run's artifact root; "" for the root


def parse_source(source: str) -> Source:
    """The run and artifact path a `source` URI names; INVALID_PARAMETER_VALUE for anything else
    (models:/ URIs, local paths, other stores: the portal registers only what a run logged here)."""
    text = source.strip()
    for pattern in (_PROXIED, _HTTP, _RUNS):
        found = pattern.match(text)
        if found:
            parts = found.groupdict()
            path = (parts.get("path") or "").strip("/")
            return Source(run_id=parts["run"], experiment_id=parts.get("exp"), path=path)
    raise invalid(f"Unsupported source {text[:200]!r}. {SOURCE_HELP}")


def onnx_artifact_in(artifacts, path: str):
    """The one ONNX artifact `path` names among a run's `artifacts` (a QuerySet from the
    experiments selectors): the file itself, or the only .onnx file under the folder."""
    exact = artifacts.filter(path=path).first() if path else None
    if exact is not None:
        return exact
    under = artifacts.filter(path__iendswith=".onnx")
    if path:
        under = under.filter(path__startswith=f"{path}/")
    found = list(under[:6])
    where = f"under {path!r}" if path else "in the run's artifacts"
    if not found:
        raise invalid(f"No ONNX file {where}. {SOURCE_HELP}")
    if len(found) > 1:
        names = ", ".join(a.path for a in found[:5])
        raise invalid(f"More than one ONNX file {where} ({names}); name the file in the source.")
    return found[0]


# --- search filters, order and pages -------------------------------------------------------------

# One condition: identifier (`tags.<key>` too, the key in backticks when it has dots or spaces),
# comparator, value ('text' or a parenthesised list for IN).
_CONDITION = re.compile(
    r"^\s*(?P<ident>tags?\.`[^`]+`|`[^`]+`|[A-Za-z_][A-Za-z0-9_.]*)\s*"
    r"(?P<op>=|!=|(?i:not\s+like|like|ilike|in))\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\((?:\s*(?:'[^']*'|\"[^\"]*\")\s*,?)*\))\s*$"
)
_AND = re.compile(r"\s+and\s+(?=(?:[^'\"]*['\"][^'\"]*['\"])*[^'\"]*$)", re.IGNORECASE)
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_TAG_PREFIXES = ("tags.", "tag.")


def _unquote(text: str) -> str:
    return text[1:-1].replace("\\'", "'").replace('\\"', '"')


def _like(field: str, pattern: str, *, case: bool) -> Q:
    """SQL LIKE as a Django lookup: % and _ wildcards, anchored at both ends."""
    regex = "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$"
    return Q(**{f"{field}__{'regex' if case else 'iregex'}": regex})


def filter_q(text: str | None, fields: dict[str, str], *, in_fields: tuple[str, ...] = ()) -> Q:
    """MLflow's registry filter (`name = 'x' AND run_id IN ('1', '2')`) as a Q object. `fields`
    maps the identifiers allowed to model fields; `in_fields` are those that take IN. Tags
    (`tags.<key> = 'value'`, `!=`) match the catalog's slug tags as tags_from_mlflow stores them;
    `!=` keeps rows without the tag (the client's own `tags.mlflow.prompt.is_prompt != 'true'`)."""
    q = Q()
    if not text or not text.strip():
        return q
    if len(text) > 2000:
        raise invalid("The filter is longer than 2,000 characters.")
    for condition in _AND.split(text.strip()):
        found = _CONDITION.match(condition)
        if not found:
            raise invalid(f"Unsupported filter condition {condition.strip()[:200]!r}; supported: {supported(fields)}.")
        ident, op, value = found["ident"], " ".join(found["op"].lower().split()), found["value"]
        if ident.startswith(_TAG_PREFIXES):
            q &= _tag_condition(ident.split(".", 1)[1].strip("`"), op, value)
            continue
        ident = ident.strip("`")
        if ident not in fields:
            raise invalid(f"Unsupported filter identifier {ident!r}; supported: {supported(fields)}.")
        q &= _field_condition(fields[ident], op, value, takes_in=ident in in_fields)
    return q


def _field_condition(field: str, op: str, value: str, *, takes_in: bool) -> Q:
    if op == "in":
        if not takes_in or not value.startswith("("):
            raise invalid("IN takes a parenthesised list, and only run_id takes it.")
        return Q(**{f"{field}__in": [a or b for a, b in _QUOTED.findall(value)]})
    if value.startswith("("):
        raise invalid(f"A list of values goes with IN only, not {op.upper()}.")
    text_value = _unquote(value)
    if op == "=":
        return Q(**{field: text_value})
    if op == "!=":
        return ~Q(**{field: text_value})
    if op == "not like":
        return ~_like(field, text_value, case=True)
    return _like(field, text_value, case=op == "like")


def _tag_condition(key: str, op: str, value: str) -> Q:
    if op not in ("=", "!=") or value.startswith("("):
        raise invalid("Tags are filtered with = or != and one quoted value.")
    text_value = _unquote(value)
    tag = (f"{key}.{text_value}" if text_value else key).lower()
    return has_tag(tag) if op == "=" else ~has_tag(tag)


def supported(fields: dict[str, str]) -> str:
    names = [f"{name} (=, !=, LIKE, ILIKE)" for name in fields]
    return ", ".join([*names, "tags.<key> (=, !=)"])


def order_terms(order_by: list, columns: dict[str, str], default: list[str]) -> list[str]:
    """MLflow's `order_by` (["name ASC", "last_updated_timestamp DESC"]) as Django order terms."""
    terms = []
    for item in order_by or []:
        if not isinstance(item, str):
            raise invalid("Give order_by as a list of strings such as 'name ASC'.")
        words = item.strip().split()
        if not words or len(words) > 2 or words[0] not in columns:
            raise invalid(f"Unsupported order_by {item[:100]!r}; columns: {', '.join(columns)} (ASC or DESC).")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise invalid(f"Unsupported order_by {item[:100]!r}: use ASC or DESC.")
        terms.append(("-" if direction == "DESC" else "") + columns[words[0]])
    return terms or default


def page_window(page_token: str | None, max_results: int, *, page_limit: int, threshold: int) -> tuple[int, int]:
    """(offset, size) of the page a search asks for. The token is the offset, as text; a page holds
    at most `page_limit` rows (the client follows next_page_token for more); `max_results` over
    `threshold` is refused as MLflow refuses it."""
    if max_results < 1 or max_results > threshold:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results': give 1 to {threshold:,}.")
    offset = 0
    if page_token:
        if not page_token.isdigit() or len(page_token) > 12:
            raise invalid("Invalid page_token: give the next_page_token of the previous page.")
        offset = int(page_token)
    return offset, min(max_results, page_limit)


def page_of(queryset, offset: int, size: int) -> tuple[list, str | None]:
    """One page and the token of the next one (None on the last page): one query, size + 1 rows."""
    rows = list(queryset[offset : offset + size + 1])
    return rows[:size], (str(offset + size) if len(rows) > size else None)


def not_found(message: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", message)
