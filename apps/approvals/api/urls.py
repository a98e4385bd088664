from django.urls import path

from apps.approvals.api import views

P = "promotions/<int:pk>"
urlpatterns = [
    path("gate-policies/", views.GatePolicyListView.as_view(), name="policy-list"),
    path("gate-policies/<int:pk>/", views.GatePolicyDetailView.as_view(), name="policy-detail"),
    path("promotions/", views.PromotionListView.as_view(), name="promotion-list"),
    path(f"{P}/", views.PromotionDetailView.as_view(), name="promotion-detail"),
    path(f"{P}/evidence", views.PromotionEvidenceView.as_view(), name="promotion-evidence"),
    path(f"{P}/approve", views.PromotionApproveView.as_view(), name="promotion-approve"),
    path(f"{P}/reject", views.PromotionRejectView.as_view(), name="promotion-reject"),
    path(f"{P}/withdraw", views.PromotionWithdrawView.as_view(), name="promotion-withdraw"),
    path(f"{P}/rollback", views.PromotionRollbackView.as_view(), name="promotion-rollback"),
]
