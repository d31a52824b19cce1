"""Static tables of the demo generator: geography, tenant profiles, names, objects, action mixes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

DEMO_TENANTS = ("acme", "globex", "initech")

# network -> (city, country, latitude, longitude). Every address the generator uses lies in one of these, so a
# GeoIP test database built from this table locates every event. Users live in the documentation ranges.
DEMO_GEO: dict[str, tuple[str, str, float, float]] = {
    "192.0.2.0/26": ("Berlin", "DE", 52.5200, 13.4050),
    "192.0.2.64/26": ("Munich", "DE", 48.1351, 11.5820),
    "192.0.2.128/26": ("London", "GB", 51.5074, -0.1278),
    "192.0.2.192/26": ("Paris", "FR", 48.8566, 2.3522),
    "198.51.100.0/26": ("New York", "US", 40.7128, -74.0060),
    "198.51.100.64/26": ("San Francisco", "US", 37.7749, -122.4194),
    "198.51.100.128/26": ("Chicago", "US", 41.8781, -87.6298),
    "198.51.100.192/26": ("Austin", "US", 30.2672, -97.7431),
    "203.0.113.0/26": ("Sydney", "AU", -33.8688, 151.2093),
    "203.0.113.64/26": ("Tokyo", "JP", 35.6762, 139.6503),
    "203.0.113.128/26": ("Singapore", "SG", 1.3521, 103.8198),
    "203.0.113.192/26": ("Toronto", "CA", 43.6532, -79.3832),
    # the data centres the tenants' own services run in
    "34.224.0.0/20": ("Ashburn", "US", 39.0438, -77.4874),
    "3.120.0.0/20": ("Frankfurt", "DE", 50.1109, 8.6821),
    "13.228.0.0/20": ("Singapore", "SG", 1.3521, 103.8198),
    # networks only attackers and the SaaS vendor's support staff use
    "105.112.0.0/20": ("Lagos", "NG", 6.5244, 3.3792),
    "113.161.0.0/20": ("Ho Chi Minh City", "VN", 10.8231, 106.6297),
    "23.95.32.0/20": ("Dallas", "US", 32.7767, -96.7970),
    "45.146.164.0/22": ("Amsterdam", "NL", 52.3676, 4.9041),
    "187.189.0.0/20": ("Mexico City", "MX", 19.4326, -99.1332),
    "87.32.0.0/20": ("Dublin", "IE", 53.3498, -6.2603),
}
_CITY_NET = {
    geo[0]: net for net, geo in DEMO_GEO.items() if net.startswith(("192.0.2.", "198.51.", "203.0."))
}
_UTC_OFFSET = {  # standard time; good enough to put the working day in the right place
    "Berlin": 1, "Munich": 1, "London": 0, "Paris": 1, "New York": -5, "San Francisco": -8, "Chicago": -6,
    "Austin": -6, "Sydney": 10, "Tokyo": 9, "Singapore": 8, "Toronto": -5,
}  # fmt: skip

TECHNIQUES = {  # pattern -> MITRE ATT&CK technique
    "brute_force": "T1110.001",
    "password_spraying": "T1110.003",
    "success_after_failures": "T1110",
    "impossible_travel": "T1078.004",
    "self_role_grant": "T1098.003",
    "admin_role_granted": "T1098.003",
    "mfa_disabled": "T1556.006",
    "audit_log_disabled": "T1685.002",
    "api_key_new_network": "T1098.001",
    "bulk_export": "T1530",
    "operator_customer_data_access": "T1078",
    "new_country": "T1078",
}


class _Profile(NamedTuple):
    display: str
    cities: str  # "City=weight,City=weight"
    datacenter: str
    sso_share: float
    patterns: tuple[str, ...]


_PROFILES = {
    "acme": _Profile(
        "Acme Corp",
        "New York=.35,San Francisco=.3,Chicago=.15,Austin=.1,Toronto=.1",
        "34.224.0.0/20",
        0.2,
        ("brute_force", "success_after_failures", "api_key_new_network", "bulk_export"),
    ),
    "globex": _Profile(
        "Globex Corporation",
        "Berlin=.4,Munich=.2,London=.25,Paris=.15",
        "3.120.0.0/20",
        0.6,
        ("password_spraying", "impossible_travel", "admin_role_granted", "audit_log_disabled"),
    ),
    "initech": _Profile(
        "Initech",
        "Austin=.35,Sydney=.25,Singapore=.15,Tokyo=.1,London=.15",
        "13.228.0.0/20",
        0.3,
        ("self_role_grant", "mfa_disabled", "operator_customer_data_access", "new_country"),
    ),
}
# A tenant the demo does not know gets every pattern, so one trail exercises every detection.
_DEFAULT_CITIES = "New York=.3,Austin=.2,London=.2,Berlin=.2,Sydney=.1"

_FIRST = [
    "Alice", "Bob", "Carmen", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko", "Liam",
    "Maya", "Nikhil", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei", "Ximena",
    "Yusuf", "Zoe", "Aaron", "Bianca", "Chen", "Dmitri", "Emma", "Felix", "Gabriela", "Hannah", "Ivan",
    "Julia", "Kwame", "Lena", "Mateo", "Nora", "Oscar", "Priya", "Rafael", "Sofia", "Thomas", "Uma", "Victor",
]  # fmt: skip
_LAST = [
    "Nguyen", "Schmidt", "Garcia", "Okafor", "Tanaka", "Rossi", "Kowalski", "Silva", "Johansson", "Patel",
    "Dubois", "Kim", "Murphy", "Novak", "Haddad", "Larsen", "Moreau", "Fischer", "Costa", "Ivanova", "Walker",
    "Mendes", "Becker", "Sato", "Hughes", "Alvarez", "Weber", "Nakamura", "Brennan", "Khan",
]  # fmt: skip
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
_BROWSERS = (
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_WEBKIT}",
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT}",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 "
    "Safari/605.1.15",
    f"Mozilla/5.0 (X11; Linux x86_64) {_WEBKIT}",
)
_MOBILE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Mobile/15E148 Safari/604.1"
)
# business object kind -> the fields an update may change, with their possible values
_FIELDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "invoice": {
        "status": ("draft", "sent", "paid", "overdue"),
        "amount": (450, 900, 1200, 2500, 4800, 7300, 12000),
        "payment_terms": ("net_15", "net_30", "net_60"),
        "currency": ("USD", "EUR", "GBP"),
    },
    "project": {
        "status": ("planned", "active", "on_hold", "done"),
        "priority": ("low", "medium", "high"),
        "budget": (5000, 12000, 25000, 40000, 80000),
    },
    "document": {
        "visibility": ("private", "team", "company"),
        "status": ("draft", "in_review", "final"),
        "folder": ("Contracts", "Engineering", "Finance", "Marketing", "People"),
    },
}
_PROJECTS = ["Falcon", "Atlas", "Horizon", "Nimbus", "Orion", "Beacon", "Keystone", "Summit", "Aurora"]
_TOPICS = ["Q3 pricing", "Onboarding", "Security review", "Vendor contract", "Roadmap", "Board update"]
_DOCS = ["proposal.docx", "notes.md", "checklist.pdf", "budget.xlsx", "slides.pptx", "summary.pdf"]
_REPORTS = ("Monthly revenue", "Open invoices", "Project status", "Team activity")
_SETTINGS: dict[str, tuple[Any, ...]] = {
    "session_timeout_minutes": (30, 60, 120, 240),
    "default_currency": ("USD", "EUR", "GBP"),
    "week_starts_on": ("monday", "sunday"),
    "allow_public_links": (False, True),
    "date_format": ("YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY"),
}
_INTEGRATIONS = ["Slack", "GitHub", "Jira", "Google Drive"]
_ROLES = ("editor", "member", "viewer", "billing")
# how often each benign action comes up in a session, by the user's role
_MIX = {"view": 40, "create": 7, "update": 14, "delete": 1.5, "share": 2.5, "report": 2.5, "export": 0.4}
_MIX |= {"password": 0.15, "denied_settings": 0.15}
_ADMIN_MIX = _MIX | {"denied_settings": 0, "settings": 0.8, "assign": 0.4, "revoke": 0.15, "invite": 0.3}
_ADMIN_MIX |= {"permission": 0.15, "end_session": 0.1, "rotate": 0.05, "integration": 0.05}
_VIEWER_MIX = {"view": 55, "report": 3, "export": 0.2, "password": 0.15, "denied_update": 1}

_ATTACK_HOUR = {  # UTC hour of day each pattern starts at
    "brute_force": 2, "password_spraying": 4, "success_after_failures": 3, "impossible_travel": 8,
    "self_role_grant": 14, "admin_role_granted": 16, "mfa_disabled": 21, "audit_log_disabled": 22,
    "api_key_new_network": 1, "bulk_export": 19, "operator_customer_data_access": 11, "new_country": 17,
}  # fmt: skip
_CUSTOMERS = {"type": "dataset", "id": "customers", "name": "Customers"}
_PREFIX = {"invoice": "inv", "project": "prj", "document": "doc"}  # id prefix of each object kind

_SEC = 1_000_000
_MIN = 60 * _SEC
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
