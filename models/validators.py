"""Field rules shared by every write path: forms, the API, Excel import.

Each ``check_*`` returns the normalised value or raises ``ValueError`` with a message a clerk can
act on; views attach the message to the field that failed.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

from app.i18n import T

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
# Area code (010, 021, 0755, ...), 7 or 8 digits, optional extension; or a 400/800 hotline.
LANDLINE_RE = re.compile(r"^0\d{2,3}-?[2-9]\d{6,7}(-\d{1,6})?$")
HOTLINE_RE = re.compile(r"^[48]00-?\d{3}-?\d{4}$")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
PLATE_RE = re.compile(
    r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领][A-Z]"
    r"(?:[A-HJ-NP-Z0-9]{5}|[A-HJ-NP-Z0-9]{4}[挂学警港澳]|[DF][A-HJ-NP-Z0-9]{5}|[A-HJ-NP-Z0-9]{5}[DF])$"
)

MSG_PHONE = T(
    "电话号码格式不正确：手机为 1 开头的 11 位数字，固话需带区号（如 0755-12345678）",
    "Invalid phone number: a mobile is 11 digits starting with 1, a landline needs its area code (e.g. 0755-12345678)",
)
MSG_MOBILE = T("手机号码格式不正确：应为 1 开头的 11 位数字", "Invalid mobile number: 11 digits starting with 1")
MSG_ID = T(
    "身份证号码不正确：应为 18 位，末位校验码须正确", "Invalid resident ID: 18 characters with a valid check digit"
)
MSG_PLATE = T("车牌号格式不正确（如 粤B12345）", "Invalid plate number (e.g. 粤B12345)")


def normalise_phone(value: str) -> str:
    return re.sub(r"[\s()（）]", "", value or "").replace("—", "-").replace("－", "-")


def check_phone(value: str | None) -> str | None:
    """A mainland mobile or landline (with area code), or a 400/800 hotline."""
    if value in (None, ""):
        return None
    v = normalise_phone(str(value))
    if v.startswith("+86"):
        v = v[3:].lstrip("-")
    if MOBILE_RE.match(v) or LANDLINE_RE.match(v) or HOTLINE_RE.match(v):
        return v
    raise ValueError(str(MSG_PHONE))


def check_mobile(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    v = normalise_phone(str(value))
    if MOBILE_RE.match(v):
        return v
    raise ValueError(str(MSG_MOBILE))


def id_check_digit(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def check_id_number(value: str | None) -> str | None:
    """18-digit resident identity number (GB 11643): region, birth date, sequence, check digit."""
    if value in (None, ""):
        return None
    v = str(value).strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", v):
        raise ValueError(str(MSG_ID))
    try:
        birth = dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise ValueError(str(MSG_ID)) from None
    if birth.year < 1900 or birth > dt.date.today():
        raise ValueError(str(MSG_ID))
    if id_check_digit(v[:17]) != v[17]:
        raise ValueError(str(MSG_ID))
    return v


def check_plate(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    v = str(value).strip().upper().replace(" ", "").replace("·", "")
    if PLATE_RE.match(v):
        return v
    raise ValueError(str(MSG_PLATE))


def check_positive_decimal(value, places: int = 2) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(str(T("必须是数字", "Must be a number"))) from None
    if not d.is_finite() or d <= 0:
        raise ValueError(str(T("必须大于 0", "Must be greater than 0")))
    if d.as_tuple().exponent < -places:
        raise ValueError(str(T(f"最多 {places} 位小数", f"At most {places} decimal places")))
    return d


# --- masking for audiences that may not see personal data -----------------------------------
def mask_phone(value: str | None) -> str | None:
    """``13812345678`` -> ``138****5678``; landlines keep the area code and last four digits."""
    if not value:
        return value
    v = str(value)
    if len(v) <= 7:
        return "*" * len(v)
    return v[:3] + "****" + v[-4:]


def mask_id_number(value: str | None) -> str | None:
    """``110101199003071234`` -> ``110***********1234``."""
    if not value:
        return value
    v = str(value)
    if len(v) <= 7:
        return "*" * len(v)
    return v[:3] + "*" * (len(v) - 7) + v[-4:]
