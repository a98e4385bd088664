"""Log training runs to the MLOps portal from any Python script (standard library + requests).

from portal_client import PortalClient

client = PortalClient("https://portal.example.com", token="ptk_...")   # or PORTAL_URL / PORTAL_TOKEN
with client.start_run("churn-model", name="baseline", params={"lr": 0.01}) as run:
    for step in range(100):
        run.log_metrics({"loss": loss, "val_acc": acc}, step=step)
        run.set_progress(step / 100)
    run.append_log("training done")                # the run page's log tail
    run.log_artifact("model.onnx", path="export/model.onnx")   # stored encrypted in the portal
# leaving the block flushes the buffer and marks the run finished (failed on an exception)

client.register_model("churn", "model.onnx", metrics={"auc": 0.91})   # models, aliases, downloads
client.online_features(["customer-stats:balance"], {"customer_id": [1, 2]})
job = client.wait_job(client.launch_job("tabular-mlp-classifier", params={"epochs": 5})["id"])
client.predict("churn", [[0.1, 0.2]])                          # and promotions, training sets, scripts

The `portal` command (portal_client/cli.py, docs/CLIENT.md) offers the same from a shell.
"""

from portal_client.client import ActiveRun, JobTimeout, PortalClient, PortalError

__all__ = ["ActiveRun", "JobTimeout", "PortalClient", "PortalError"]
