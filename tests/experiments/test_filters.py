import pytest

from apps.experiments.filters import FilterError, parse_filter, tokenize
from apps.experiments.selectors import runs_in_order, runs_of
from apps.experiments.services import run_log_batch
from tests.experiments.factories import experiment, run


@pytest.fixture
def runs(owner):
    exp = experiment(owner)
    made = []
    for i, (acc, lr, opt) in enumerate(
        [(0.95, 0.001, "adam"), (0.85, 0.001, "sgd"), (0.97, 0.1, "adam"), (0.5, 0.005, "sgd")]
    ):
        r = run(
            exp, owner, name=f"r{i}", params={"lr": lr, "optimizer": opt}, tags={"team": "vision" if i % 2 else "nlp"}
        )
        run_log_batch(
            run=r,
            actor=owner,
            metrics=[{"key": "val_acc", "step": 1, "value": acc}, {"key": "val/loss", "step": 1, "value": 1 - acc}],
        )
        made.append(r)
    return exp, made


def names(exp, text, sort=""):
    return [r.name for r in runs_in_order(runs_of(exp, {"filter": text, "order_by": sort}))]


def test_metric_and_param_filter(runs):
    exp, _ = runs
    assert sorted(names(exp, "metrics.val_acc > 0.9 and params.lr < 0.01")) == ["r0"]
    assert sorted(names(exp, "metrics.val_acc > 0.9 or params.optimizer = 'sgd'")) == ["r0", "r1", "r2", "r3"]
    assert sorted(names(exp, '(metrics.val_acc >= 0.85 and metrics.val_acc <= 0.95) and tags.team = "vision"')) == [
        "r1"
    ]
    assert sorted(names(exp, "metrics.`val/loss` < 0.1")) == ["r0", "r2"]
    assert sorted(names(exp, "params.optimizer != 'adam' and status = 'running'")) == ["r1", "r3"]
    assert sorted(names(exp, "name = 'r2' OR name == 'r3'")) == ["r2", "r3"]
    assert names(exp, "metrics.missing > 0") == []


def test_sort_by_metric_and_param(runs):
    exp, _ = runs
    assert names(exp, "", "-metrics.val_acc") == ["r2", "r0", "r1", "r3"]
    assert names(exp, "", "metrics.val_acc") == ["r3", "r1", "r0", "r2"]
    assert names(exp, "params.lr < 1", "params.lr")[-1] == "r2"
    assert names(exp, "", "name") == ["r0", "r1", "r2", "r3"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("metrics.val_acc >", "Expected a number or a quoted string"),
        ("metrics.val_acc > 0.9 and", "ends too early"),
        ("metrics.val_acc 0.9", "expected an operator"),
        ("__import__('os').system('true')", "Cannot read the filter at position 17"),
        ("metrics.val_acc > 0.9; drop table", "Cannot read the filter at position 22"),
        ("(metrics.a > 1", "')' to close"),
        ("foo > 1", "Unknown name 'foo'"),
        ("metrics.a > 'x'", "compare it with a number"),
        ("params.opt < 'adam'", "only be compared with = or !="),
        ("status = 'flying'", "status is one of"),
        ("status > 1", "quote text values"),
        ("metrics.a > 1 metrics.b > 2", "expected 'and', 'or' or the end"),
        ("x" * 3000, "longer than"),
    ],
)
def test_parser_refuses_with_clear_message(db, text, fragment):
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert fragment in str(info.value)


def test_tokenizer_never_evaluates(db):
    kinds = [t.kind for t in tokenize("metrics.a >= -1.5e-3 and (params.b = 'it\\'s')")]
    assert kinds == ["ident", "op", "number", "and", "lparen", "ident", "op", "string", "rparen"]
