"""Resource accounting: wall/CPU time, peak RSS, GPU time and memory."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

try:  # POSIX only; the engine still runs (without RSS figures) elsewhere.
    import resource
except ImportError:  # pragma: no cover
    resource = None  # type: ignore[assignment]


@dataclass
class ResourceUsage:
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user+system CPU of this process (plus DDP workers)
    peak_rss_mb: float | None = None  # process-lifetime high-water mark
    gpu_s: float = 0.0  # wall time x GPUs while training on CUDA
    peak_gpu_mem_mb: float | None = None
    gpus: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def peak_rss_mb(who: str = "self") -> float | None:
    if resource is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN)
    # ru_maxrss is KiB on Linux but bytes on macOS.
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024
    return round(usage.ru_maxrss * scale, 1)


def children_cpu_s() -> float:
    if resource is None:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ResourceMeter:
    """Measures one training session in the current process."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def elapsed(self) -> float:
        return time.perf_counter() - self._wall0

    def finish(self, gpus: int = 1) -> ResourceUsage:
        usage = ResourceUsage(
            wall_s=round(self.elapsed(), 3),
            cpu_s=round(time.process_time() - self._cpu0, 3),
            peak_rss_mb=peak_rss_mb(),
        )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            usage.gpus = gpus
            usage.gpu_s = round(self.elapsed() * gpus, 3)
            usage.peak_gpu_mem_mb = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return usage
