"""Hyperparameter schema validation (no torch needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.training.engine.schema import ParamSpec
from apps.training.engine.templates import TEMPLATES, get_template, list_templates, validate_params

MLP = "tabular-mlp-classifier"
REPO_ROOT = Path(__file__).resolve().parents[3]


def test_defaults_fill_missing_fields():
    clean, errors = validate_params(MLP, {})
    assert errors == {}
    assert clean == {spec.name: spec.default for spec in TEMPLATES[MLP].params}


def test_coercion_from_strings_and_numbers():
    clean, errors = validate_params(
        MLP,
        {"lr": "0.01", "layers": 3.0, "hidden_units": " 64 ", "epochs": "5", "scheduler": "step", "dropout": 0},
    )
    assert errors == {}
    assert clean["lr"] == 0.01 and isinstance(clean["lr"], float)
    assert clean["layers"] == 3 and isinstance(clean["layers"], int)
    assert clean["hidden_units"] == 64 and clean["epochs"] == 5
    assert clean["scheduler"] == "step"
    assert clean["dropout"] == 0.0 and isinstance(clean["dropout"], float)


def test_blank_and_none_mean_default():
    clean, errors = validate_params(MLP, {"lr": "", "epochs": None})
    assert errors == {}
    assert clean["lr"] == get_template(MLP).validate({})[0]["lr"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("layers", 2.5, "must be an integer"),
        ("layers", "two", "must be an integer"),
        ("layers", True, "must be an integer"),
        ("layers", 0, "must be >= 1"),
        ("layers", 99, "must be <= 8"),
        ("lr", "fast", "must be a number"),
        ("lr", "nan", "must be a finite number"),
        ("lr", 0, "must be >= 1e-06"),
        ("dropout", 0.95, "must be <= 0.9"),
        ("scheduler", "linear", "must be one of: cosine, step, none"),
        ("val_fraction", 0.9, "must be <= 0.5"),
    ],
)
def test_per_field_errors(field, value, message):
    clean, errors = validate_params(MLP, {field: value})
    assert list(errors) == [field]
    assert errors[field] == [message]
    assert field not in clean


def test_unknown_field_and_multiple_errors():
    _, errors = validate_params(MLP, {"bogus": 1, "layers": -1, "lr": "x"})
    assert set(errors) == {"bogus", "layers", "lr"}
    assert errors["bogus"][0].startswith("unknown parameter")


def test_unknown_template_and_non_mapping():
    _, errors = validate_params("nope", {})
    assert "template" in errors
    _, errors = validate_params(MLP, [1, 2])  # type: ignore[arg-type]
    assert "__all__" in errors


def test_bool_coercion():
    spec = ParamSpec("flag", "bool", False)
    assert spec.coerce("true") is True and spec.coerce("0") is False and spec.coerce(1) is True
    with pytest.raises(ValueError):
        spec.coerce("maybe")


def test_malformed_spec_rejected():
    with pytest.raises(ValueError):
        ParamSpec("lr", "float", 0.1, 0.0, 1.0, log=True)  # log scale needs min > 0
    with pytest.raises(ValueError):
        ParamSpec("n", "int", 50, 1, 10)  # default out of range


def test_templates_describe_schema_and_metrics():
    listed = list_templates()
    json.dumps(listed)  # must be JSON-serialisable
    by_name = {t["name"]: t for t in listed}
    assert {"tabular-mlp-classifier", "digits-cnn", "mlp-regressor"} <= set(by_name)
    assert by_name["mlp-regressor"]["metrics"] == ["val_loss", "val_rmse", "val_mae", "val_r2"]
    assert by_name["digits-cnn"]["metrics"] == ["val_loss", "val_acc", "val_f1"]
    lr = next(p for p in by_name[MLP]["params"] if p["name"] == "lr")
    assert lr["log"] is True and lr["type"] == "float"
    schema = by_name[MLP]["json_schema"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["scheduler"]["enum"] == ["cosine", "step", "none"]
    expected = {"hidden_units", "layers", "dropout", "lr", "weight_decay", "batch_size"}
    assert expected | {"epochs", "patience", "scheduler", "val_fraction"} <= set(schema["properties"])


def test_validation_does_not_import_torch():
    # The web tier validates forms without paying for a torch import.
    code = (
        "import sys; from apps.training.engine import validate_params, list_templates; "
        "validate_params('digits-cnn', {'lr': 0.1}); list_templates(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=60)
