"""Online reads: request validation, cached view metadata and access decisions, response assembly.

Shared by the DRF view and the lean ASGI path (fastpath.py) so both answer with identical JSON.
Metadata, token and access decisions are cached per process and dropped whenever the Redis
generation counter moves (bumped after any change to views, permissions, tokens or users); the
counter is read in the same pipeline as the values, so a stale decision is never used twice.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime

from django.core.exceptions import ValidationError

from apps.core import metrics
from apps.core.audit import audit_event
from apps.core.errors import NotFound
from apps.core.permissions import can, can_view_pii
from apps.features import nearcache, online
from apps.features.models import FeatureView
from apps.features.offline import check_residency, process_region
from apps.features.schema import is_text, shown

MAX_ENTITIES = 1000
MAX_FEATURES = 200
MASK = "***"
CACHE_MAX_AGE = 60.0
CACHE_MAX_ENTRIES = 50_000


def bad_request(detail: str, field: str = "detail") -> ValidationError:
    """A 400 naming `field` (the API's handler and the fast path both answer `{field: [detail]}`)."""
    return ValidationError({field: [detail]})


@dataclasses.dataclass(frozen=True)
class ViewMeta:
    id: int
    name: str
    version: int
    region: str
    ttl_us: int
    key_names: tuple
    key_dtypes: tuple
    dtypes: dict
    pii: frozenset

    @classmethod
    def of(cls, view) -> ViewMeta:
        keys = view.entity.join_keys
        return cls(
            id=view.pk,
            name=view.name,
            version=view.version,
            region=view.region,
            ttl_us=int(view.ttl_seconds) * 1_000_000,
            key_names=tuple(k["name"] for k in keys),
            key_dtypes=tuple(k["dtype"] for k in keys),
            dtypes={f["name"]: f["dtype"] for f in view.features},
            pii=frozenset(f["name"] for f in view.features if f.get("pii")),
        )


class Cache:
    """Per-process cache; every entry also expires after CACHE_MAX_AGE seconds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gen: bytes | None = None
        self.views: dict[str, tuple[ViewMeta | None, float]] = {}
        self.access: dict[tuple[int, int], tuple[bool, bool, float]] = {}
        self.tokens: dict[str, tuple[object, float | None, float]] = {}  # token, expiry, stamp

    def clear(self, gen: bytes | None = None) -> None:
        with self.lock:
            self.gen = gen
            self.views.clear()
            self.access.clear()
            self.tokens.clear()

    def _fresh(self, stamp: float) -> bool:
        return time.monotonic() - stamp < CACHE_MAX_AGE

    def view(self, name: str):
        hit = self.views.get(name)
        return hit if hit is not None and self._fresh(hit[1]) else None

    def put_view(self, name: str, meta: ViewMeta | None) -> None:
        if len(self.views) > CACHE_MAX_ENTRIES:
            self.views.clear()
        self.views[name] = (meta, time.monotonic())

    def rights(self, user_id: int, view_id: int):
        hit = self.access.get((user_id, view_id))
        return hit if hit is not None and self._fresh(hit[2]) else None

    def put_rights(self, user_id: int, view_id: int, can_view: bool, can_pii: bool) -> None:
        if len(self.access) > CACHE_MAX_ENTRIES:
            self.access.clear()
        self.access[(user_id, view_id)] = (can_view, can_pii, time.monotonic())


CACHE = Cache()


def parse_request(body) -> tuple[tuple[tuple[str, str, str], ...], dict[str, list], int]:
    """Validate `{"features": ["view:feature", ...], "entities": {"key": [...]}}`."""
    if not isinstance(body, dict):
        raise bad_request('Send a JSON object: {"features": ["view:feature", ...], "entities": {"key": [...]}}.')
    features, entities = body.get("features"), body.get("entities")
    if not isinstance(features, list) or not features:
        raise bad_request('Give "features" as a non-empty list of "view:feature" strings.', "features")
    if len(features) > MAX_FEATURES:
        raise bad_request(f"At most {MAX_FEATURES} features per call.", "features")
    refs = _parse_features(features)
    if not isinstance(entities, dict) or not entities:
        raise bad_request('Give "entities" as an object of join key -> list of values.', "entities")
    lengths = set()
    for key, values in entities.items():
        if not is_text(key):
            raise bad_request(f"entities names a join key that is not valid Unicode: {shown(key)!r}.", "entities")
        if not isinstance(values, list):
            raise bad_request(f"entities.{key} must be a list of values.", "entities")
        if not all(is_text(v) for v in values if type(v) is str):
            raise bad_request(f"entities.{key} holds text that is not valid Unicode (a lone surrogate).", "entities")
        lengths.add(len(values))
    if len(lengths) != 1:
        raise bad_request("Every join key list in entities must have the same length.", "entities")
    n = lengths.pop()
    if n == 0 or n > MAX_ENTITIES:
        raise bad_request(f"Send between 1 and {MAX_ENTITIES} entities per call.", "entities")
    return refs, entities, n


_PARSED: dict[tuple, tuple[tuple[str, str, str], ...]] = {}


def _parse_features(features: list) -> tuple[tuple[str, str, str], ...]:
    """`(ref, view, feature)` per reference; a service asks for the same list every call, so the
    parse of a valid list is remembered (a bounded dict keyed by the tuple of references)."""
    key = tuple(features) if all(type(f) is str for f in features) else None
    refs = _PARSED.get(key) if key is not None else None
    if refs is not None:
        return refs
    refs = []
    for ref in features:
        if not isinstance(ref, str) or not is_text(ref) or ref.count(":") != 1 or ref[0] == ":" or ref[-1] == ":":
            raise bad_request(f'{str(ref)[:80]!r} is not a "view:feature" reference.', "features")
        view, feature = ref.split(":")
        refs.append((ref, view, feature))
    if len({r[0] for r in refs}) != len(refs):
        raise bad_request("A feature is listed twice.", "features")
    refs = tuple(refs)  # shared between requests: immutable
    if key is not None:
        if len(_PARSED) >= 10_000:
            _PARSED.clear()
        _PARSED[key] = refs
    return refs


def cached_views(user_id: int, names) -> dict[str, ViewMeta] | None:
    """All metas with access already decided for this user, or None when the DB must be asked."""
    out = {}
    for name in names:
        hit = CACHE.view(name)
        if hit is None:
            return None
        meta = hit[0]
        if meta is None:
            return None
        rights = CACHE.rights(user_id, meta.id)
        if rights is None or not rights[0]:
            return None
        out[name] = meta
    return out


def resolve_views(user, names) -> dict[str, tuple[ViewMeta, bool]]:
    """Sync (DB) resolution; NotFound for views that are missing or not visible to `user`."""
    out = {}
    for name in names:
        hit = CACHE.view(name)
        if hit is None:
            view = FeatureView.objects.select_related("entity").filter(name=name).first()
            meta = ViewMeta.of(view) if view is not None else None
            CACHE.put_view(name, meta)
        else:
            meta, view = hit[0], None
        if meta is None:
            raise NotFound(f"No feature view {name!r} (or you may not see it).")
        rights = CACHE.rights(user.pk, meta.id)
        if rights is None:
            view = view or FeatureView.objects.get(pk=meta.id)
            can_view = can(user, "view", view)
            can_pii = can_view and can_view_pii(user, view)
            CACHE.put_rights(user.pk, meta.id, can_view, can_pii)
            rights = (can_view, can_pii)
        if not rights[0]:
            raise NotFound(f"No feature view {name!r} (or you may not see it).")
        out[name] = meta
    return out


def pii_rights(user_id: int, metas: dict[str, ViewMeta]) -> dict[str, bool]:
    return {name: bool((CACHE.rights(user_id, m.id) or (False, False))[1]) for name, m in metas.items()}


def plan_keys(refs, entities: dict, n: int, metas: dict[str, ViewMeta]):
    """Redis keys per view (validated entity values) and the fields to fetch per view."""
    fields: dict[str, list[str]] = {}
    for _, view, feature in refs:
        meta = metas[view]
        if feature not in meta.dtypes:
            raise bad_request(f"Feature view {view!r} has no feature {feature!r}.", "features")
        fields.setdefault(view, []).append(feature)
    keys: dict[str, list[str]] = {}
    for view in fields:
        meta = metas[view]
        columns = []
        for kname, kdtype in zip(meta.key_names, meta.key_dtypes, strict=True):
            values = entities.get(kname)
            if values is None:
                raise bad_request(f"Feature view {view!r} needs join key {kname!r} in entities.", "entities")
            for v in values:
                ok = isinstance(v, str) if kdtype == "string" else (isinstance(v, int) and not isinstance(v, bool))
                if not ok:
                    raise bad_request(f"entities.{kname} holds {str(v)[:40]!r}; it must be {kdtype}.", "entities")
            columns.append(values)
        prefix = online.view_prefix(meta.id, meta.version)
        if len(columns) == 1:
            keys[view] = [prefix + str(v) for v in columns[0]]
        else:
            keys[view] = [prefix + online.key_text(vals) for vals in zip(*columns, strict=True)]
    return keys, fields


def read_groups(keys, fields) -> list[tuple[list[str], list[str]]]:
    """Per view, in request order: its Redis keys and the fields to fetch (plus __ts)."""
    return [(keys[view], [*fields[view], online.TS_FIELD]) for view in fields]


def assemble(refs, entities, n, metas, fields, raw_rows, pii_ok: dict[str, bool], now_us: int):
    """Build the response body from HMGET results; returns (body, unmasked PII refs read)."""
    by_view: dict[str, dict] = {}
    i = 0
    for view, names in fields.items():
        rows = raw_rows[i : i + n]
        i += n
        meta = metas[view]
        ts_out, status = [], []
        for row in rows:
            ts_raw = row[-1]
            if ts_raw is None:
                ts_out.append(None)
                status.append("missing")
                continue
            ts = int(ts_raw)
            ts_out.append(datetime.fromtimestamp(ts / 1e6, UTC).isoformat().replace("+00:00", "Z"))
            status.append("expired" if meta.ttl_us and now_us - ts > meta.ttl_us else "present")
        by_view[view] = {"rows": rows, "ts": ts_out, "status": status, "cols": {f: c for c, f in enumerate(names)}}
    results, masked, unmasked_pii = {}, [], []
    for ref, view, feature in refs:
        block, meta = by_view[view], metas[view]
        col = block["cols"][feature]
        decode = online.DECODERS[meta.dtypes[feature]]
        is_pii = feature in meta.pii
        is_masked = is_pii and not pii_ok[view]
        values, statuses = [], []
        for row, st in zip(block["rows"], block["status"], strict=True):
            raw = row[col] if st == "present" else None
            if raw is None:
                values.append(None)
                statuses.append("missing" if st == "present" else st)
            else:
                values.append(MASK if is_masked else decode(raw))
                statuses.append(st)
        if is_masked:
            masked.append(ref)
        elif is_pii:
            unmasked_pii.append(ref)
        results[ref] = {"values": values, "statuses": statuses}
    body = {
        "entities": entities,
        "features": [r[0] for r in refs],
        "results": results,
        "event_timestamps": {view: block["ts"] for view, block in by_view.items()},
        "masked": masked,
    }
    return body, unmasked_pii


def now_micros() -> int:
    return time.time_ns() // 1000


def read_sync(*, user, body, request=None) -> dict:
    """The whole online read for Django code (DRF view, pages, services, in-process callers)."""
    started = time.perf_counter()
    refs, entities, n = parse_request(body)
    names = list(dict.fromkeys(r[1] for r in refs))
    for attempt in (0, 1):
        seen = CACHE.gen
        metas = cached_views(user.pk, names) or resolve_views(user, names)
        for meta in metas.values():
            if meta.region != process_region():
                check_residency(meta.region, actor=user, obj=FeatureView.objects.get(pk=meta.id), action="online-read")
        keys, fields = plan_keys(refs, entities, n, metas)
        res = nearcache.read_rows(read_groups(keys, fields))
        if res[0] != seen:
            CACHE.clear(res[0])
            if attempt == 0:
                continue
        break
    pii_ok = pii_rights(user.pk, metas)
    out, unmasked = assemble(refs, entities, n, metas, fields, res[1:], pii_ok, now_micros())
    if unmasked:
        audit_pii_read(user, metas, unmasked, n, request=request)
    metrics.ONLINE_READ.observe(("django",), time.perf_counter() - started)
    return out


def audit_pii_read(user, metas, unmasked: list[str], n: int, request=None) -> None:
    """One audit entry per view whose PII values were returned unmasked."""
    views = {ref.split(":")[0] for ref in unmasked}
    for view in FeatureView.objects.filter(pk__in=[metas[v].id for v in views]):
        audit_event(
            actor=user,
            event="features.pii_read",
            obj=view,
            data={"features": [r for r in unmasked if r.startswith(view.name + ":")], "entities": n},
            request=request,
        )
