"""Demo catalog: small torch MLPs trained at seed time on scikit-learn's bundled data sets.

Idempotent: a model that already has versions is left alone.
"""

from __future__ import annotations

import hashlib

import numpy as np

from apps.catalog import services
from apps.catalog.models import RegisteredModel
from apps.core.sharing import share_object

CARDS = {
    "breast-cancer-mlp": {
        "intended_use": "Decision support for pathologists triaging fine-needle aspirate images (demo data).",
        "out_of_scope": "Diagnosis without a clinician; populations unlike the Wisconsin 1995 cohort.",
        "training_data": "scikit-learn breast_cancer (569 samples, 30 features), 80/20 stratified split, seed 7.",
        "evaluation": "Accuracy, ROC AUC and F1 on the held-out 20%; see the metrics chart per version.",
        "limitations": "Tiny data set; no calibration study; features must be computed as in the original study.",
        "ethical_considerations": "False negatives delay treatment: keep a human in the loop and monitor drift.",
        "owners_contacts": "Maya Engineer (engineer@example.com), Risk Analytics team.",
    },
    "wine-mlp": {
        "intended_use": "Classify wine cultivar from chemical analysis (teaching example).",
        "training_data": "scikit-learn wine (178 samples, 13 features), 80/20 stratified split, seed 7.",
    },
}


def _train(data, target, hidden: int, epochs: int, seed: int = 7):
    import torch
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(data, target, test_size=0.2, stratify=target, random_state=seed)
    torch.manual_seed(seed)
    classes = int(target.max()) + 1

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(x_train.mean(0), dtype=torch.float32))
            self.register_buffer("std", torch.tensor(x_train.std(0) + 1e-6, dtype=torch.float32))
            self.body = torch.nn.Sequential(
                torch.nn.Linear(data.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes)
            )

        def forward(self, x):
            return self.body((x - self.mean) / self.std)

    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.03)
    xt, yt = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        proba = torch.softmax(net(torch.tensor(x_test, dtype=torch.float32)), 1).numpy()
    pred = proba.argmax(1)
    metrics = {"accuracy": accuracy_score(y_test, pred), "f1_macro": f1_score(y_test, pred, average="macro"),
               "train_loss": float(loss.detach())}  # fmt: skip
    metrics["roc_auc"] = roc_auc_score(y_test, proba[:, 1] if classes == 2 else proba, multi_class="ovr")
    return net, x_test[:8].astype(np.float32), {k: round(float(v), 5) for k, v in metrics.items()}


def seed(*, users, team, out) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread start-up costs more than it saves
    try:
        _seed(users=users, team=team, out=out)
    finally:
        torch.set_num_threads(threads)


def _seed(*, users, team, out) -> None:
    from sklearn.datasets import load_breast_cancer, load_wine

    from apps.catalog.torch_export import version_register_from_torch

    engineer, engineer2 = users.get("engineer"), users.get("engineer2")
    if engineer is None:
        out.write("  catalog: no 'engineer' user; skipped")
        return
    plans = [
        ("breast-cancer-mlp", load_breast_cancer(), [(8, 40), (32, 80)], ["medical", "tabular", "binary"]),
        ("wine-mlp", load_wine(), [(16, 60)], ["tabular", "multiclass"]),
    ]
    for name, bunch, runs, tags in plans:
        if RegisteredModel.objects.filter(name=name, latest_version__gt=0).exists():
            continue
        digest = hashlib.sha256(np.ascontiguousarray(bunch.data).tobytes()).hexdigest()
        model = RegisteredModel.objects.filter(name=name).first() or services.model_create(
            actor=engineer, name=name, description=bunch.DESCR.splitlines()[2][:200].strip(" *") or name,
            tags=tags, team=team.slug if team is not None else None,
        )  # fmt: skip
        version = None
        for hidden, epochs in runs:
            net, example, metrics = _train(bunch.data, bunch.target, hidden, epochs)
            version = version_register_from_torch(
                model_name=name, module=net, example_input=example, actor=engineer, metrics=metrics,
                description=f"MLP, {hidden} hidden units, {epochs} full-batch Adam epochs",
                lineage={"training_set": f"sklearn:{name.rsplit('-', 1)[0]}", "training_data_digest": f"sha256:{digest}",
                         "code_version": "apps/catalog/seed.py", "seed": 7},
            )  # fmt: skip
        services.alias_move(model=model, alias="staging", version=version, actor=engineer)
        services.card_update(model=model, actor=engineer, **CARDS.get(name, {}))
        if engineer2 is not None:
            share_object(obj=model, actor=engineer, role="editor", user=engineer2)
        out.write(f"  catalog: {name} with {version.version} version(s), staging -> v{version.version}")
