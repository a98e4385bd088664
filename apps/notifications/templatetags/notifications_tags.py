"""`{% unread_notifications user as n %}` for the bell in base.html (one COUNT query per page)."""

from django import template

from apps.notifications.selectors import unread_count

register = template.Library()


@register.simple_tag
def unread_notifications(user) -> int:
    return unread_count(user) if getattr(user, "is_authenticated", False) else 0
