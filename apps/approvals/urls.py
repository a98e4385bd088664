from django.urls import path

from apps.approvals import views

urlpatterns = [
    path("approvals/", views.inbox, name="inbox"),
    path("approvals/requests/", views.request_list, name="request-list"),
    path("approvals/requests/new/", views.request_new, name="request-new"),
    path("approvals/requests/<int:pk>/", views.request_detail, name="request-detail"),
    path("approvals/requests/<int:pk>/decide/", views.request_decide, name="request-decide"),
    path("approvals/requests/<int:pk>/withdraw/", views.request_withdraw, name="request-withdraw"),
    path("approvals/requests/<int:pk>/rollback/", views.request_rollback, name="request-rollback"),
]
