"""Command line: ``python -m apps.training.engine --template digits-cnn ...``.

Progress goes to stderr; stdout carries exactly one JSON document (the
template list for ``--list``, otherwise the run summary) so it can be piped.
Exit codes: 0 succeeded, 1 failure (incl. parity), 2 bad arguments/params,
3 cancelled (Ctrl-C) or timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .templates import TEMPLATES, list_templates, validate_params


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m apps.training.engine", description="Train a template model.")
    p.add_argument("--list", action="store_true", help="print templates and schemas as JSON")
    p.add_argument("--template", choices=sorted(TEMPLATES), help="training recipe")
    p.add_argument("--params", default="{}", help="JSON object of hyperparameters")
    p.add_argument("--epochs", type=int, help="shortcut overriding params.epochs")
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--ddp", type=int, default=0, metavar="N", help="DDP world size (>1 spawns)")
    p.add_argument("--dataset", help="built-in dataset instead of the template default")
    p.add_argument("--threads", type=int, metavar="N", help="CPU intra-op threads")
    p.add_argument("--max-runtime", type=float, metavar="S", help="wall-clock limit in seconds")
    p.add_argument("--resume", type=Path, metavar="CKPT", help="resume from a checkpoint file")
    p.add_argument("--checkpoint", type=Path, metavar="PATH", help="write each epoch's checkpoint")
    p.add_argument("--export", type=Path, metavar="OUT.onnx", help="ONNX export + parity check")
    p.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto")
    p.add_argument("--tolerance", type=float, default=1e-4, help="ONNX parity tolerance")
    p.add_argument("--safetensors", type=Path, metavar="OUT", help="write weights + metadata")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        _emit(list_templates())
        return 0
    if not args.template:
        parser.error("--template is required (or use --list)")
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        parser.error(f"--params is not valid JSON: {exc}")
    if not isinstance(params, dict):
        parser.error("--params must be a JSON object")
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if not args.resume:  # report bad params without paying for a torch import
        _, errors = validate_params(args.template, params)
        if errors:
            detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
            _emit({"status": "error", "error": f"invalid params: {detail}", "errors": errors})
            return 2
    # Library code (e.g. exporters) may print; keep stdout for the JSON summary.
    with contextlib.redirect_stdout(sys.stderr):
        summary, code = _run(args, params)
    _emit(summary)
    return code


def _run(args: argparse.Namespace, params: dict[str, Any]) -> tuple[dict[str, Any], int]:
    from .callbacks import CallbackList, ProgressPrinter
    from .config import InvalidParams, TrainConfig
    from .distributed import train_distributed
    from .export import ParityError, export_result_onnx, export_safetensors, model_metadata
    from .loop import train

    stop = _CliControl(args.checkpoint)
    callbacks = CallbackList([stop, None if args.quiet else ProgressPrinter(sys.stderr)])
    config = TrainConfig(
        template=args.template,
        params=params,
        device=args.device,
        seed=args.seed,
        max_runtime_s=args.max_runtime,
        resume_from=args.resume.read_bytes() if args.resume else None,
        bf16=args.bf16,
        dataset=args.dataset,
        num_threads=args.threads,
    )
    previous = signal.signal(signal.SIGINT, stop.request_stop)
    try:
        result = train_distributed(config, args.ddp, callbacks) if args.ddp > 1 else train(config, callbacks)
    except InvalidParams as exc:
        return {"status": "error", "error": str(exc), "errors": exc.errors}, 2
    except Exception as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}, 1
    finally:
        signal.signal(signal.SIGINT, previous)

    summary = result.to_dict()
    code = 0 if result.status == "succeeded" else 3
    if result.model is not None and result.epochs_completed > 0:
        if args.safetensors:
            _write(args.safetensors, export_safetensors(result.model, model_metadata(result)))
            summary["safetensors"] = str(args.safetensors)
        if args.export:
            try:
                exported = export_result_onnx(result, tolerance=args.tolerance, exporter=args.exporter)
            except ParityError as exc:
                summary["export"] = {"error": str(exc), "parity_max_abs_diff": exc.max_abs_diff}
                return summary, 1
            _write(args.export, exported.onnx_bytes)
            summary["export"] = {"path": str(args.export), **exported.summary()}
    return summary, code


class _CliControl:
    """Ctrl-C requests a cooperative stop; optional per-epoch checkpoint file."""

    def __init__(self, checkpoint_path: Path | None) -> None:
        self.checkpoint_path = checkpoint_path
        self.stop_requested = False

    def request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_requested:  # second Ctrl-C: give up on being graceful
            raise KeyboardInterrupt
        self.stop_requested = True
        print("\nstopping after the current step (Ctrl-C again to abort)", file=sys.stderr)

    def should_stop(self) -> bool:
        return self.stop_requested

    def on_checkpoint(self, epoch: int, step: int, state: bytes) -> None:
        if self.checkpoint_path is not None:
            _write(self.checkpoint_path, state)


def _write(path: Path, data: bytes) -> None:
    """Atomic write so a crash never leaves a truncated checkpoint/model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _emit(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()
