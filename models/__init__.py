"""All models, imported here so metadata (and Alembic) sees every table."""

from models.archives import Building, Estate, Owner, Ownership, Resident, Unit, Vehicle
from models.base import AuditedModel, ChangeLog, acting_as, utcnow
from models.calendar import Holiday
from models.desk import Callback, DutyShift, Notification, NotificationRoute, SlaPolicy, Ticket, TicketEvent
from models.fees import Bill, BillingRun, FeeItem, FeeStandard, MeterReading
from models.payments import DunningNotice, Payment, PaymentAllocation, ReceiptCounter, Refund
from models.renovation import (
    DepositDeduction,
    RectificationOrder,
    Renovation,
    RenovationExtension,
    RenovationInspection,
)
from models.scope import UserEstate
from models.security import LoginSession
from models.services import ServiceItem, ServiceOrder, ServiceSubscription

__all__ = [
    "AuditedModel",
    "DepositDeduction",
    "RectificationOrder",
    "Renovation",
    "RenovationExtension",
    "RenovationInspection",
    "ServiceItem",
    "ServiceOrder",
    "ServiceSubscription",
    "Bill",
    "BillingRun",
    "Building",
    "Callback",
    "ChangeLog",
    "DunningNotice",
    "DutyShift",
    "Estate",
    "FeeItem",
    "FeeStandard",
    "Holiday",
    "LoginSession",
    "MeterReading",
    "Notification",
    "NotificationRoute",
    "Owner",
    "Ownership",
    "Payment",
    "PaymentAllocation",
    "ReceiptCounter",
    "Refund",
    "Resident",
    "SlaPolicy",
    "Ticket",
    "TicketEvent",
    "Unit",
    "UserEstate",
    "Vehicle",
    "acting_as",
    "utcnow",
]
