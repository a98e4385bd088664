"""Browser pages for approval gates: the inbox, the request list, the new-request form and one
evidence page per request, where approvers decide. Thin: selectors read, services write and
check every rule (who may decide, separation of duties, window, evidence digest).

NotFound and Forbidden become the 404/403 pages. A 409 on a decision (someone decided first, the
evidence changed, outside the change window) is shown on the evidence page itself, reloaded, so
the approver sees what changed; other domain errors go to `DomainErrorMiddleware`.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from apps.accounts import stepup
from apps.approvals import forms, selectors, services
from apps.approvals.models import PromotionRequest
from apps.catalog import selectors as catalog_selectors
from apps.catalog.models import CARD_SECTIONS
from apps.core import format as fmt
from apps.core.errors import Conflict
from apps.core.forms import apply_validation_error
from apps.core.pages import page_requires
from apps.core.permissions import can

PAGE_SIZE = 25
INBOX_ROWS = 20
# What each check and each history event is called on the page (the code names stay beside them).
CHECK_LABELS = {
    "metric_threshold": "Metric no worse than the version behind the alias",
    "onnx_parity": "ONNX export matches the trained model",
    "model_card": "Model card complete",
    "artifact_digest": "Stored artifact intact (re-read and decrypted)",
    "lineage": "Lineage recorded (run, training data)",
    "residency": "Training data stays in allowed regions",
    "open_alerts": "No open critical alert",
}
EVENT_LABELS = {
    "promotion.request": "filed the request",
    "promotion.checks": "ran the checks",
    "promotion.approve": "approved",
    "promotion.reject": "rejected",
    "promotion.promote": "moved the alias (promoted)",
    "promotion.withdraw": "withdrew the request",
    "promotion.expire": "expired the request",
    "promotion.remind": "sent the expiry reminder",
    "promotion.rollback": "rolled back",
    "promotion.recheck": "sent the request back to its checks",
}


def inbox(request):
    """Leadership inbox: awaiting my decision first, then my requests, then recent decisions."""
    boxes = selectors.inbox_for(request.user)
    context = {
        "awaiting": list(boxes["awaiting"][:INBOX_ROWS]),
        "rechecking": list(boxes["rechecking"][:INBOX_ROWS]),
        "mine": list(boxes["mine"][:INBOX_ROWS]),
        "recent": list(boxes["recent"][:INBOX_ROWS]),
        "can_request": can(request.user, "add", PromotionRequest),
    }
    return render(request, "approvals/inbox.html", context)


def request_list(request):
    form = forms.PromotionFiltersForm(request.GET)
    page = Paginator(selectors.promotions_visible(request.user, form.filters()), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {"page": page, "form": form, "values": request.GET, "query": query.urlencode()}
    return render(request, "approvals/request_list.html", context)


@page_requires("add", PromotionRequest)
def request_new(request):
    """From a version page ("Request promotion"): ?model=<name>&version=<n>."""
    source = request.POST if request.method == "POST" else request.GET
    version = catalog_selectors.version_for(request.user, source.get("model", ""), _number(source.get("version")))
    form = forms.PromotionRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            promotion = services.promotion_request(
                actor=request.user,
                version=version,
                target_alias=form.cleaned_data["target_alias"],
                justification=form.cleaned_data["justification"],
                change=form.change(),
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        except Conflict as exc:  # already there, one still open, archived model: said on the form
            form.add_error(None, exc.detail)
        else:
            messages.success(request, f"Promotion #{promotion.pk} filed; its checks are running.")
            return redirect("approvals:request-detail", pk=promotion.pk)
    context = {"form": form, "version": version, "model": version.model}
    return render(request, "approvals/request_form.html", context)


def request_detail(request, pk, *, decision_form=None, rollback_form=None, status=200):
    """The evidence page: what approvers decide from, and the buttons each viewer may use."""
    promotion = selectors.promotion_for(request.user, pk)
    evidence = selectors.evidence_for(promotion)
    user = request.user
    state = promotion.state
    decisions = list(promotion.decisions.all())  # prefetched with their approvers by promotion_for
    # Only this round's decisions count: after a re-check every approver decides again.
    this_round = [d for d in decisions if d.round == promotion.checks_round]
    decided = any(d.approver_id == user.pk for d in this_round)
    awaiting = state == PromotionRequest.State.AWAITING_APPROVAL
    approver = awaiting and not decided and can(user, "decide", promotion)
    # Separation of duties (the service refuses them too): say why instead of offering the buttons.
    if approver and promotion.requested_by_id == user.pk:
        not_yours = "You requested this promotion; another approver decides it."
    elif approver and promotion.version.created_by_id == user.pk:
        not_yours = "You created this version; another approver decides it."
    else:
        not_yours = ""
    context = {
        "promotion": promotion,
        **evidence_context(evidence),
        "decisions": decisions,
        "approvals_count": sum(d.decision == "approve" for d in this_round),
        "earlier_rounds": promotion.checks_round > 1,
        "checks_current": evidence.get("checks_current"),
        # Awaiting approval on evidence the checks did not run on (an edited metric or card): say what
        # changed; a decision now is refused and sends the request back to its checks.
        "evidence_moved": selectors.basis_changes(promotion.checks_basis, evidence) or ["the evidence changed"]
        if awaiting and not evidence.get("checks_current")
        else [],
        "may_decide": approver and not not_yours,
        "not_yours": not_yours,
        "decided_by_me": decided,
        "may_withdraw": promotion.is_open and can(user, "withdraw", promotion),
        **_rollback_context(user, promotion),
        "decision_form": decision_form
        or forms.DecisionForm(initial={"evidence_digest": evidence.get("evidence_digest")}),
        "rollback_form": rollback_form or forms.CommentForm(),
        "live": state in PromotionRequest.OPEN_STATES,
    }
    return render(request, "approvals/request_detail.html", context, status=status)


def _rollback_context(user, promotion) -> dict:
    """The rollback form for those who may use it, or why a promoted request cannot roll back."""
    if promotion.state != PromotionRequest.State.PROMOTED or not can(user, "rollback", promotion):
        return {"may_rollback": False, "rollback_blocked": ""}
    blocked = selectors.rollback_blocker(promotion)
    return {"may_rollback": not blocked, "rollback_blocked": blocked}


@require_POST
def request_decide(request, pk):
    promotion = selectors.promotion_for(request.user, pk)
    form = forms.DecisionForm(request.POST)
    if not form.is_valid():
        return request_detail(request, pk, decision_form=form, status=400)
    data = form.cleaned_data
    if not stepup.step_up_passed(request, data.get("otp"), session=request.session, action="promotion.decide"):
        verb = "approve" if data["decision"] == "approve" else "reject"
        version = promotion.version
        summary = (
            f"You are about to {verb} promoting {version.model.name} v{version.version} to {promotion.target_alias}."
        )
        return stepup.step_up_page(
            request, fields=request.POST.dict(), summary=summary, wrong_code=bool(data.get("otp"))
        )
    try:
        services.promotion_decide(
            actor=request.user,
            promotion=promotion,
            decision=data["decision"],
            comment=data["comment"],
            evidence_digest=data["evidence_digest"],
        )
    except Conflict as exc:
        messages.error(request, f"Not recorded: {exc.detail}")
    except ValidationError as exc:
        apply_validation_error(form, exc)
        return request_detail(request, pk, decision_form=form, status=400)
    else:
        promotion.refresh_from_db()
        verb = "Approved" if data["decision"] == "approve" else "Rejected"
        messages.success(request, f"{verb}. The request is now {promotion.get_state_display().lower()}.")
    return redirect("approvals:request-detail", pk=pk)


@require_POST
def request_withdraw(request, pk):
    promotion = selectors.promotion_for(request.user, pk)
    services.promotion_withdraw(actor=request.user, promotion=promotion)
    messages.success(request, "Withdrawn.")
    return redirect("approvals:request-detail", pk=pk)


@require_POST
def request_rollback(request, pk):
    promotion = selectors.promotion_for(request.user, pk)
    form = forms.CommentForm(request.POST)
    if not form.is_valid():
        return request_detail(request, pk, rollback_form=form, status=400)
    services.promotion_rollback(actor=request.user, promotion=promotion, comment=form.cleaned_data["comment"])
    messages.success(request, f"Rolled back: {promotion.target_alias} points at the previous version again.")
    return redirect("approvals:request-detail", pk=pk)


def _number(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


# --- the evidence, shaped for the page ----------------------------------------------------------


def evidence_context(evidence: dict) -> dict:
    """`selectors.evidence_for`'s dict as the template and the chart read it: one row per metric
    (candidate, current, delta), and the chart's series."""
    candidate = evidence.get("candidate") or {}
    current = evidence.get("current") or {}
    rows = evidence.get("metrics")
    if not isinstance(rows, list):
        cand, cur = candidate.get("metrics") or {}, current.get("metrics") or {}
        rows = [
            {
                "name": name,
                "candidate": cand.get(name),
                "current": cur.get(name),
                "delta": _delta(cand.get(name), cur.get(name)),
            }
            for name in sorted(set(cand) | set(cur))
        ]
    # The chart shows each metric both versions have as its relative change (metrics differ in
    # scale: an AUC beside an epoch count makes one bar of each), with both values on hover.
    shared = [r for r in rows if _is_number(r.get("candidate")) and _is_number(r.get("current"))]
    chart = {
        "metrics": [r["name"] for r in shared],
        "change_pct": [_relative(r["candidate"], r["current"]) for r in shared],
        "candidate": [r["candidate"] for r in shared],
        "current": [r["current"] for r in shared],
        "candidate_label": f"v{candidate.get('version', '?')}",
        "current_label": f"{evidence.get('target_alias') or 'current'} v{current.get('version')}" if current else "",
    }
    checks = [
        {**c, "label": CHECK_LABELS.get(c.get("name"), c.get("name")), "items": _items(c.get("evidence"))}
        for c in evidence.get("checks") or []
        if isinstance(c, dict)
    ]
    return {
        "evidence": evidence,
        "candidate": candidate,
        "current": current,
        "metric_rows": rows,
        "chart": chart,
        "checks": checks,
        "check_summary": _check_summary(checks),
        "card": evidence.get("card") or {},
        "card_items": _card_items(evidence.get("card") or {}),
        "change": evidence.get("change") or {},
        "lineage_items": _items(evidence.get("lineage")),
        "history_rows": [_history_row(h) for h in evidence.get("history") or [] if isinstance(h, dict)],
        "evidence_digest": evidence.get("evidence_digest") or "",
    }


def _check_summary(checks: list[dict]) -> dict:
    """The checks at a glance: how many of each status, and the ones an approver must read."""
    counts = {
        status: sum(c.get("status") == status for c in checks) for status in ("passed", "failed", "no_data", "pending")
    }
    attention = [
        {
            "label": c["label"],
            "status": c.get("status"),
            "reason": (c.get("evidence") or {}).get("reason")
            or (c.get("evidence") or {}).get("error")
            or (f"rule: {c['rule']}" if c.get("rule") else ""),
        }
        for c in checks
        if c.get("status") in ("failed", "no_data")
    ]
    return {"counts": counts, "attention": attention, "total": len(checks)}


def _card_items(card: dict) -> list[tuple[str, str]]:
    sections = card.get("sections") if isinstance(card.get("sections"), dict) else {}
    labels = dict(CARD_SECTIONS)
    return [(labels.get(k, k), v) for k, v in sections.items() if v]  # the missing ones are listed above


def _pairs(value) -> list:
    return list(value.items()) if isinstance(value, dict) else []


def _items(value) -> list[tuple[str, str]]:
    """A check's evidence or the lineage as (name, text) pairs: numbers as `num` writes them,
    nested values as compact JSON."""
    return [(str(k).replace("_", " "), _text(v)) for k, v in _pairs(value)]


def _text(value) -> str:
    """A value as a reader (not a parser) wants it: yes/no, numbers as `num`, lists joined,
    objects as `key: value` pairs, nothing as a dash."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_number(value):
        return fmt.num(value)
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) if value else "none"
    if isinstance(value, dict):
        if not value:
            return "none"
        if all(not isinstance(v, dict | list) for v in value.values()):
            return ", ".join(f"{k}: {_text(v)}" for k, v in sorted(value.items()))
        return json.dumps(value, sort_keys=True, default=str)
    return "—" if value in (None, "") else str(value)


def _history_row(entry: dict) -> dict:
    when = entry.get("at") or entry.get("when") or entry.get("timestamp") or entry.get("created_at")
    if isinstance(when, str):
        when = parse_datetime(when) or when
    detail = entry.get("data")
    if isinstance(detail, dict):  # the earlier results of a re-check stay in the audit trail, not on the page
        detail = {k: v for k, v in detail.items() if k != "previous_results"}
    else:
        detail = {
            k: v for k, v in entry.items() if k not in {"at", "when", "timestamp", "created_at", "actor", "event"}
        }
    event = entry.get("event") or entry.get("action") or ""
    return {
        "when": when,
        "actor": entry.get("actor"),
        "event": event,
        "label": EVENT_LABELS.get(event, event),
        "detail": ", ".join(f"{k}={_text(v)}" for k, v in detail.items()) if detail else "",
    }


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _relative(candidate: float, current: float) -> float | None:
    return None if current == 0 else round((candidate - current) / abs(current) * 100, 4)


def _delta(candidate, current):
    return candidate - current if _is_number(candidate) and _is_number(current) else None
