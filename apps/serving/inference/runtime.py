"""ONNX Runtime sessions of model versions, one per version per process, loaded once and warmed.

`session_for(version)` answers the cached session or loads it: the artifact is decrypted from the
vault (no audit entry: serving a model is not a download), ONNX Runtime builds the session with
one request per core in mind (intra-op threads SERVING_ORT_INTRA_THREADS, inter-op 1, sequential
execution, every graph optimisation), and one zero-filled batch runs through it before anyone is
served. Loads of the same version happen once (a lock per version); other versions keep serving.
Sessions are kept least recently used first out past SERVING_SESSION_CACHE_MB of model bytes;
each eviction is logged at INFO. A version that failed to load is not retried for FAILURE_TTL_S.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import numpy as np
from django.conf import settings

log = logging.getLogger(__name__)

FAILURE_TTL_S = 10.0
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class ModelLoadError(Exception):
    """The version's artifact could not be turned into a session (the server's problem: a 500)."""


class LoadedModel:
    """One warmed ONNX Runtime session of one ModelVersion, with what validation needs to know."""

    __slots__ = (
        "version_id",
        "label",
        "input_names",
        "output_names",
        "input_dtypes",
        "input_shapes",
        "signature",
        "nbytes",
        "provider",
        "source",
        "_session",
    )

    def __init__(self, *, version_id: int, label: str, session, signature: dict, nbytes: int, source: str = ""):
        self.version_id = version_id
        self.source = source  # the artifact's storage key: a reused id (a flushed test database) reloads
        self.label = label  # "fraud-score v2", as error messages name it
        self._session = session
        inputs = session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.output_names = [o.name for o in session.get_outputs()]
        self.input_dtypes = {i.name: np.dtype(_ORT_DTYPES.get(i.type, np.float32)) for i in inputs}
        # dims as ints where fixed, None where symbolic (the batch axis, usually)
        self.input_shapes = {i.name: [d if isinstance(d, int) else None for d in (i.shape or [])] for i in inputs}
        self.signature = signature or {}
        self.nbytes = nbytes
        self.provider = (session.get_providers() or ["CPUExecutionProvider"])[0]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self._session.run(self.output_names, feeds), strict=True))

    def __repr__(self) -> str:
        return f"<LoadedModel {self.label} ({self.nbytes} bytes, {self.provider})>"


def providers() -> list[str]:
    """CUDA first where onnxruntime-gpu offers it and the setting allows, CPU always."""
    import onnxruntime as ort  # heavy: loaded by the processes that serve, not by every import

    if settings.SERVING_ORT_PROVIDER == "auto" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session_options():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.SERVING_ORT_INTRA_THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _warm(model: LoadedModel) -> None:
    feeds = {}
    for name in model.input_names:
        shape = [d if d else 1 for d in model.input_shapes[name]]
        feeds[name] = np.zeros(shape, dtype=model.input_dtypes[name])
    model.run(feeds)


def build(data: bytes, *, version_id: int, label: str, signature: dict, source: str = "") -> LoadedModel:
    """A warmed session from the artifact's bytes (no cache)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(data, sess_options=_session_options(), providers=providers())
        model = LoadedModel(
            version_id=version_id, label=label, session=session, signature=signature, nbytes=len(data), source=source
        )
        _warm(model)
    except Exception as exc:  # ORT raises its own types for every load or run failure
        raise ModelLoadError(f"ONNX Runtime cannot serve {label}: {str(exc).splitlines()[0][:300]}") from exc
    return model


class _Sessions:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: OrderedDict[int, LoadedModel] = OrderedDict()
        self.nbytes = 0
        self.loading: dict[int, threading.Lock] = {}
        self.failed: dict[int, tuple[float, str]] = {}

    def get(self, version_id: int) -> LoadedModel | None:
        model = self.items.get(version_id)
        if model is not None:
            try:
                self.items.move_to_end(version_id)
            except KeyError:  # evicted meanwhile by another thread; the caller still holds it
                pass
        return model

    def put(self, model: LoadedModel) -> None:
        cap = settings.SERVING_SESSION_CACHE_MB << 20
        with self.lock:
            old = self.items.pop(model.version_id, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self.items[model.version_id] = model
            self.nbytes += model.nbytes
            while self.nbytes > cap and len(self.items) > 1:
                evicted_id, evicted = self.items.popitem(last=False)
                self.nbytes -= evicted.nbytes
                log.info(
                    "evicted the ONNX Runtime session of %s (%d bytes; %d MB cap, %d bytes kept)",
                    evicted.label,
                    evicted.nbytes,
                    settings.SERVING_SESSION_CACHE_MB,
                    self.nbytes,
                )

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.nbytes = 0
            self.failed.clear()


SESSIONS = _Sessions()


def cached_session(version_id: int) -> LoadedModel | None:
    """The loaded session of this version in this process, or None (never loads: hot path)."""
    return SESSIONS.get(version_id)


def _label(version) -> str:
    model = getattr(version, "model", None)
    return f"{getattr(model, 'name', 'model')} v{version.version}"


def session_for(version) -> LoadedModel:
    """The warmed session of `version` (a ModelVersion), loading it once per process on a miss.
    Raises ModelLoadError when the artifact cannot be read or served."""
    source = version.artifact.storage_key
    hit = SESSIONS.get(version.pk)
    if hit is not None and hit.source == source:
        return hit
    with SESSIONS.lock:
        gate = SESSIONS.loading.setdefault(version.pk, threading.Lock())
    with gate:  # one load per version; callers for other versions go on
        hit = SESSIONS.get(version.pk)
        if hit is not None and hit.source == source:
            return hit
        failed = SESSIONS.failed.get(version.pk)
        if failed is not None and time.monotonic() - failed[0] < FAILURE_TTL_S:
            raise ModelLoadError(failed[1])
        from apps.core import vault

        label = _label(version)
        started = time.perf_counter()
        try:
            data = b"".join(vault.blob_chunks(version.artifact))
            model = build(data, version_id=version.pk, label=label, signature=version.signature, source=source)
        except ModelLoadError as exc:
            SESSIONS.failed[version.pk] = (time.monotonic(), str(exc))
            raise
        except Exception as exc:  # vault errors: missing, tampered, unreadable
            message = f"The artifact of {label} could not be read: {type(exc).__name__}."
            log.error("%s (%s)", message, exc)
            SESSIONS.failed[version.pk] = (time.monotonic(), message)
            raise ModelLoadError(message) from exc
        SESSIONS.put(model)
        SESSIONS.failed.pop(version.pk, None)
        log.info("loaded and warmed %s in %.1f ms (%s)", label, (time.perf_counter() - started) * 1000, model.provider)
        return model
