"""Roles as data: role x resource x right, declared once.

Rights: ``r`` read (lists, details, the REST GET/info), ``w`` write (add, edit, delete, REST
POST/PUT/DELETE, import), ``x`` export (.xlsx of a list), ``p`` personal data (see owners' ID
numbers and full phone numbers; without it they are masked, e.g. ``138****5678``), ``a`` approve
(decisions reserved to a role: approving or rejecting a renovation or its extension; the routes
map to ``can_approve`` in views/base.py).

Every resource registered in ``views`` must have a row here (start-up refuses otherwise), and the
permission test walks this table against every resource and role over HTTP. ``flask desk
sync-roles`` writes it to FAB's role tables; start-up does the same. Admin has every right.
"""

from __future__ import annotations

RIGHTS = {"r": "read", "w": "write", "x": "export", "p": "personal", "a": "approve"}
ROLES = ("Manager", "Supervisor", "Staff", "Committee")
ADMIN_ROLE = "Admin"
PUBLIC_ROLE = "Public"
SYSTEM_ROLE = "System"  # the system user's role: no permission, it never logs in
# The roles whose people do the department's work: handlers, technicians, people on duty. Pickers
# of a person (a ticket's handler, an order's technician, a shift's person) offer only these.
WORKING_ROLES = ("Manager", "Supervisor", "Staff")

# fmt: off
MATRIX: dict[str, tuple[str, str, str, str]] = {
    #                 Manager  Supervisor  Staff    Committee
    "estate":        ("rwxp",  "rxp",      "rxp",   "rx"),
    "building":      ("rwxp",  "rwxp",     "rxp",   "rx"),
    "unit":          ("rwxp",  "rwxp",     "rwxp",  "rx"),
    "owner":         ("rwxp",  "rwxp",     "rwxp",  "rx"),
    "ownership":     ("rwxp",  "rwxp",     "rwxp",  "rx"),
    "resident":      ("rwxp",  "rwxp",     "rwxp",  "rx"),
    "vehicle":       ("rwxp",  "rwxp",     "rwxp",  "rx"),
    "ticket":        ("rwxp",  "rwxp",     "rwxp",  "rx"),
    # Archived help registers (DESIGN.md item 13): read-only, for those who answer for the records.
    "ticket_archive": ("rx",   "",         "",      "rx"),
    "callback":      ("rwxp",  "rwxp",     "rwxp",  "rx"),
    "sla_policy":    ("rwx",   "rx",       "rx",    "rx"),
    "holiday":       ("rwx",   "rx",       "rx",    "rx"),
    "ticket_subkind": ("rwx",  "rx",       "rx",    "rx"),
    "duty_shift":    ("rwx",   "rwx",      "rx",    "rx"),
    # Each user's own inbox (a base filter keeps it to the user's rows).
    "notification":  ("r",     "r",        "r",     "r"),
    # Robot webhook URLs carry their access tokens: kept with the security settings.
    "notification_route": ("rwx", "",      "",      ""),
    # The change history holds old and new values, personal data included: Managers only.
    "change_log":    ("rxp",   "",         "",      ""),
    # Which estates each person works for: given by Admin only (every right is Admin's).
    "user_estate":   ("",      "",         "",      ""),
    # Fees (DESIGN.md item 7). Only Managers configure items and standards (approval is a write);
    # owners' bills are personal financial data, not for the Committee (it sees the reports).
    "fee_item":      ("rwx",   "rx",       "rx",    "rx"),
    "fee_standard":  ("rwx",   "rx",       "rx",    "rx"),
    "meter_reading": ("rwx",   "rwx",      "rwx",   ""),
    "bill":          ("rwxp",  "rxp",      "rxp",   ""),
    "billing_run":   ("rwx",   "rx",       "rx",    "r"),
    # Payments and refunds are recorded at the front desk; dunning letters are issued by the job and
    # marked delivered by supervisors. The Committee reads the fee reports (aggregates) only.
    "payment":       ("rwxp",  "rwxp",     "rwxp",  ""),
    "refund":        ("rwxp",  "rwxp",     "rwxp",  ""),
    "dunning_notice": ("rwxp", "rwxp",     "rxp",   ""),
    "collection_report": ("rx", "rx",      "rx",    "rx"),
    # Paid convenience services (DESIGN.md item 9): only Managers maintain the catalog; the desk
    # handles orders (an order names the unit's owner and resident, hence "p").
    "service_item":  ("rwx",   "rx",       "rx",    "rx"),
    "service_order": ("rwxp",  "rwxp",     "rwxp",  "rx"),
    "service_subscription": ("rwx", "rwx", "rwx",   "r"),
    # Renovations (DESIGN.md item 8): the desk handles applications, inspections, rectification,
    # deductions and refunds; only Managers approve or reject a renovation or an extension ("a").
    "renovation":    ("rwxpa", "rwxp",     "rwxp",  "rx"),
    "inspection":    ("rwx",   "rwx",      "rwx",   "r"),
    "rectification_order": ("rwx", "rwx",  "rwx",   "r"),
    "renovation_extension": ("rwxa", "rwx", "rwx",  "r"),
    "deposit_deduction": ("rwx", "rwx",    "rwx",   "r"),
}
# fmt: on


def rights_of(role: str, resource: str) -> set[str]:
    """The rights (``read``, ``write``, ``export``, ``personal``) a role has on a resource."""
    if role == ADMIN_ROLE:
        return set(RIGHTS.values())
    if role not in ROLES or resource not in MATRIX:
        return set()
    letters = MATRIX[resource][ROLES.index(role)]
    return {RIGHTS[c] for c in letters}


# What every signed-in role may do to its own account (FAB's own views).
SELF_SERVICE = (
    ("can_userinfo", "UserDBModelView"),
    ("resetmypassword", "UserDBModelView"),
    ("can_this_form_get", "ResetMyPasswordView"),
    ("can_this_form_post", "ResetMyPasswordView"),
    ("can_this_form_get", "UserInfoEditView"),
    ("can_this_form_post", "UserInfoEditView"),
    ("can_get", "MenuApi"),
)
