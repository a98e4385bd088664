"""The approvals fixtures (a request awaiting approvers' decisions), for the step-up tests."""

from tests.approvals.conftest import approvers, artifact, awaiting, model, requester, v2  # noqa: F401
