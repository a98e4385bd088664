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
"""

from portal_client.client import ActiveRun, PortalClient, PortalError

__all__ = ["ActiveRun", "PortalClient", "PortalError"]
