from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"
    # A user's own inbox: every signed-in user reads and marks only their own rows (selectors
    # filter by recipient); no object permissions, no nav item (the bell in the header links here).
