"""Browser pages of monitoring: the alert inbox and alert page, drift reports, an endpoint's
monitoring overview and a version's reference profile (one module per kind)."""
