"""Static vocabulary of the simulated product: event names, features, company names, the CSM team.

The product is a B2B analytics-and-workflow SaaS. Event names follow the Segment B2B SaaS
spec style (Title Case, object + past-tense verb) so the rules and docs read like a real
tracking plan.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- event names -------------------------------------------------------------------------------
LOGIN = "Login"
DASHBOARD_VIEWED = "Dashboard Viewed"
FEATURE_USED = "Feature Used"
REPORT_EXPORTED = "Report Exported"
SEARCH_PERFORMED = "Search Performed"
COMMENT_ADDED = "Comment Added"
USER_INVITED = "User Invited"
SEAT_ADDED = "Seat Added"
API_REQUEST = "API Request"
INTEGRATION_CONNECTED = "Integration Connected"
INTEGRATION_DISCONNECTED = "Integration Disconnected"
ONBOARDING_STARTED = "Onboarding Started"
ONBOARDING_STEP_COMPLETED = "Onboarding Step Completed"
ONBOARDING_COMPLETED = "Onboarding Completed"
INVOICE_PAID = "Invoice Paid"
INVOICE_PAYMENT_FAILED = "Invoice Payment Failed"
PAYMENT_METHOD_UPDATED = "Payment Method Updated"
CANCEL_PAGE_VIEWED = "Cancel Page Viewed"
SUBSCRIPTION_DOWNGRADED = "Subscription Downgraded"
NPS_SUBMITTED = "NPS Submitted"
LICENSE_USAGE_REPORTED = "License Usage Reported"

#: The feature that predicts retention; the onboarding pack checks it is adopted in 14 days.
KEY_FEATURE = "workflows"
FEATURES = (
    "dashboards",
    "reports",
    "alerts",
    KEY_FEATURE,
    "segments",
    "sharing",
    "forecasting",
    "annotations",
)
ONBOARDING_STEPS = ("create_workspace", "invite_team", "connect_data_source", "build_first_dashboard")
INTEGRATIONS = ("salesforce", "hubspot", "snowflake", "slack", "zendesk", "bigquery")
API_ENDPOINTS = ("/v1/records", "/v1/records/batch", "/v1/dashboards", "/v1/exports", "/v1/users")
EXPORT_FORMATS = ("csv", "xlsx", "pdf")
LOGIN_METHODS = ("password", "sso", "google")

# Healthy API traffic: (status, weight). 5xx ≈ 0.4 %, 4xx ≈ 2.6 %.
HEALTHY_API_STATUSES = (
    (200, 9300),
    (201, 300),
    (204, 100),
    (400, 40),
    (404, 120),
    (422, 60),
    (429, 40),
    (500, 25),
    (503, 15),
)
INCIDENT_API_STATUSES = ((200, 40), (500, 25), (502, 15), (503, 15), (504, 5))

# --- accounts ----------------------------------------------------------------------------------
NAME_HEADS = (
    "Blue", "Bright", "North", "Silver", "Red", "Green", "Iron", "Clear", "True", "Summit",
    "Harbor", "Maple", "Cedar", "Quartz", "Nimbus", "Atlas", "Vertex", "Lumen", "Orbit", "Pioneer",
)  # fmt: skip
NAME_TAILS = ("ridge", "field", "stone", "wave", "leaf", "path", "point", "forge", "line", "works", "peak", "bay")
NAME_SECTORS = (
    "Analytics", "Logistics", "Health", "Labs", "Foods", "Bank", "Retail", "Media",
    "Energy", "Robotics", "Software", "Insurance", "Travel", "Learning",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Csm:
    """A customer-success manager who owns accounts."""

    name: str
    email: str
    slack: str
    timezone: str


CSM_TEAM = (
    Csm("Dana Whitfield", "dana.whitfield@example.com", "U04DWHITFLD", "America/New_York"),
    Csm("Marcus Chen", "marcus.chen@example.com", "U04MCHEN001", "America/Los_Angeles"),
    Csm("Priya Raman", "priya.raman@example.com", "U04PRAMAN01", "Europe/London"),
    Csm("Tomás García", "tomas.garcia@example.com", "U04TGARCIA1", "Europe/Madrid"),
    Csm("Aisha Bello", "aisha.bello@example.com", "U04ABELLO01", "Europe/Berlin"),
    Csm("Kenji Sato", "kenji.sato@example.com", "U04KSATO001", "Asia/Tokyo"),
)


@dataclass(frozen=True, slots=True)
class Tier:
    """A pricing tier: plan name, seat range and MRR per seat."""

    name: str
    plan: str
    seats: tuple[int, int]
    mrr_per_seat: float


TIERS = {
    "enterprise": Tier("enterprise", "Enterprise (annual)", (20, 45), 95.0),
    "growth": Tier("growth", "Growth (monthly)", (8, 20), 65.0),
    "starter": Tier("starter", "Starter (monthly)", (3, 7), 39.0),
}
