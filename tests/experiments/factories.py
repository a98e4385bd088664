from apps.experiments import services


def experiment(owner, name="churn", **kw):
    return services.experiment_create(name=name, actor=owner, **kw)


def run(exp, owner, name="run-1", **kw):
    return services.run_create(experiment=exp, name=name, actor=owner, source="script", **kw)


def points(key, n, start=0, fn=lambda s: 1.0 / (1 + s)):
    return [{"key": key, "step": s, "value": fn(s)} for s in range(start, start + n)]
