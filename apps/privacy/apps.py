from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "apps.privacy"
    label = "privacy"
    verbose_name = "Data-subject requests"
    # Platform admins' alone (apps/privacy/selectors.py asks the decision point whether the user is
    # one); no role is given `add_erasurecertificate`, so the navigation shows it to admins only.
    nav_items = [("Data-subject requests", "privacy:requests", "privacy.add_erasurecertificate")]
