"""What a job cost (wall or GPU hours at the queue's rate) and whether its GPU was worth it."""

from __future__ import annotations

from django.conf import settings

from apps.core import queues
from apps.training.models import TrainingJob

GPU_UNDERUSED_MB = 512


def cost_of(job: TrainingJob) -> float:
    """GPU hours for GPU jobs (wall hours otherwise) at `settings.QUEUE_COST_PER_HOUR` of the queue."""
    base = queues.split_queue(job.queue)[0]
    hours = (job.gpu_s if base == "gpu" and job.gpu_s else job.wall_s) / 3600
    return round(hours * float(settings.QUEUE_COST_PER_HOUR.get(base, 0.0)), 4)


def gpu_hint(job: TrainingJob) -> str:
    """A sentence for a finished GPU job that barely used its GPU; empty otherwise."""
    if job.resource_class != "gpu" or job.state != TrainingJob.State.SUCCEEDED or job.device != "cuda":
        return ""
    if (job.peak_gpu_mem_mb or 0) < GPU_UNDERUSED_MB:
        return (
            f"This GPU job peaked at {job.peak_gpu_mem_mb or 0:.0f} MB of GPU memory: it barely used its GPU. "
            "A CPU worker would likely be cheaper for this model size."
        )
    return ""
