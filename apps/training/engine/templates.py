"""Registry of training recipes ("templates") and their hyperparameter schemas.

Importing this module does not import torch: model builders import
`models` lazily so the web tier can list and validate templates cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .schema import ParamSpec, params_json_schema, validate_against

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

TaskKind = Literal["classification", "regression"]

CLASSIFICATION_METRICS = ("val_loss", "val_acc", "val_f1")
REGRESSION_METRICS = ("val_loss", "val_rmse", "val_mae", "val_r2")

ModelBuilder = Callable[[Mapping[str, Any], tuple[int, ...], int], "nn.Module"]


@dataclass(frozen=True)
class Template:
    """A training recipe: task, schema, model factory, metrics, demo data."""

    name: str
    title: str
    description: str
    task: TaskKind
    params: tuple[ParamSpec, ...]
    builder: ModelBuilder
    default_dataset: str
    # Fixed per-sample input shape (images); None means a flat feature vector.
    input_shape: tuple[int, ...] | None = None
    # Per-feature statistics suit tabular columns; images use one global mean/std.
    per_feature_norm: bool = True
    monitor: str = "val_loss"
    monitor_mode: Literal["min", "max"] = "min"

    @property
    def metrics(self) -> tuple[str, ...]:
        return CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS

    def validate(self, params: Mapping[str, Any] | None):
        return validate_against(self.params, params)

    def build_model(self, params: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        return self.builder(params, input_shape, n_outputs)

    def prepare_inputs(self, X: np.ndarray) -> np.ndarray:
        """Reshape a caller's feature matrix to the per-sample shape the model expects."""
        if self.input_shape is None:
            if X.ndim != 2:
                raise ValueError(f"{self.name} expects X of shape (n_samples, n_features)")
            return X
        size = 1
        for dim in self.input_shape:
            size *= dim
        if X[0].size != size:
            raise ValueError(
                f"{self.name} expects {size} features per sample (shape {self.input_shape}), got {X[0].size}"
            )
        return X.reshape((len(X), *self.input_shape))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "task": self.task,
            "metrics": list(self.metrics),
            "monitor": {"metric": self.monitor, "mode": self.monitor_mode},
            "default_dataset": self.default_dataset,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "params": [spec.to_dict() for spec in self.params],
            "json_schema": params_json_schema(self.params),
        }


def _common(*, lr: float, batch_size: int, epochs: int, patience: int, dropout: float) -> tuple[ParamSpec, ...]:
    return (
        ParamSpec("dropout", "float", dropout, 0.0, 0.9, help="Dropout probability."),
        ParamSpec("lr", "float", lr, 1e-6, 1.0, log=True, help="AdamW learning rate."),
        ParamSpec("weight_decay", "float", 1e-4, 0.0, 1.0, help="AdamW decoupled weight decay."),
        ParamSpec("batch_size", "int", batch_size, 1, 65536, log=True, help="Samples per step per process."),
        ParamSpec("epochs", "int", epochs, 1, 10000, help="Maximum number of epochs."),
        ParamSpec(
            "patience",
            "int",
            patience,
            0,
            10000,
            help="Early stopping: epochs without val_loss improvement (0 disables).",
        ),
        ParamSpec(
            "scheduler",
            "choice",
            "cosine",
            choices=("cosine", "step", "none"),
            help="Per-epoch LR schedule: cosine annealing, step (x0.1 every third of the run) or none.",
        ),
        ParamSpec("val_fraction", "float", 0.2, 0.05, 0.5, help="Fraction held out for validation."),
    )


def _mlp_params() -> tuple[ParamSpec, ...]:
    return (
        ParamSpec("hidden_units", "int", 128, 4, 4096, log=True, help="Units per hidden layer."),
        ParamSpec("layers", "int", 2, 1, 8, help="Number of hidden layers."),
        *_common(lr=1e-3, batch_size=64, epochs=30, patience=5, dropout=0.1),
    )


def _build_mlp(params: Mapping[str, Any], input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    from .models import MLP

    n_features = 1
    for dim in input_shape:
        n_features *= dim
    return MLP(n_features, params["hidden_units"], params["layers"], params["dropout"], n_out)


def _build_cnn(params: Mapping[str, Any], input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    from .models import SmallCNN

    return SmallCNN(input_shape, params["channels"], params["dropout"], n_out)


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="tabular-mlp-classifier",
            title="Tabular MLP classifier",
            description="MLP on a numeric feature matrix with integer/categorical labels.",
            task="classification",
            params=_mlp_params(),
            builder=_build_mlp,
            default_dataset="wine",
        ),
        Template(
            name="digits-cnn",
            title="Digits CNN",
            description="Small CNN on the 8x8 handwritten digits (1797 images, 10 classes).",
            task="classification",
            params=(
                ParamSpec("channels", "int", 16, 2, 256, log=True, help="Channels of the first conv."),
                *_common(lr=3e-3, batch_size=64, epochs=10, patience=3, dropout=0.25),
            ),
            builder=_build_cnn,
            default_dataset="digits",
            input_shape=(1, 8, 8),
            per_feature_norm=False,
        ),
        Template(
            name="mlp-regressor",
            title="MLP regressor",
            description="MLP on a numeric feature matrix with a float target (MSE loss).",
            task="regression",
            params=_mlp_params(),
            builder=_build_mlp,
            default_dataset="diabetes",
        ),
    )
}


class UnknownTemplate(KeyError):
    def __str__(self) -> str:
        return f"unknown template {self.args[0]!r} (available: {', '.join(TEMPLATES)})"


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UnknownTemplate(name) from None


def list_templates() -> list[dict[str, Any]]:
    """JSON-ready description of every template (what `--list` prints)."""
    return [t.to_dict() for t in TEMPLATES.values()]


def validate_params(
    template_name: str, params: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Coerce `params` for a template; returns ``(clean_params, errors_by_field)``.

    Missing fields get defaults, unknown fields are errors, and an unknown
    template is reported under the ``"template"`` key.
    """
    if template_name not in TEMPLATES:
        return {}, {"template": [str(UnknownTemplate(template_name))]}
    return TEMPLATES[template_name].validate(params)
