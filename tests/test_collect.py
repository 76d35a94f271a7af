"""Taking money at the desk (issue 12 §4), on the real PostgreSQL: the 收款 form of a unit (and of a
bill) lists the unit's open bills oldest first with what is due on each, ticked; saving records
one payment through ``record_payment`` (oldest bills first), and the receipt opens; every refusal
is a 4xx naming the field with nothing written; two clerks collecting the same bills at once: one
payment, one clear conflict; the Committee never sees the button, another estate's unit is not
there; payments are never edited or deleted, and a voided one is marked 作废 / VOID wherever it
appears (lists, detail pages, the printed receipt, the bill's and the unit's payment lists)."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re
import threading
import time
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from tests import conftest as cf

D = Decimal


# --- the scene -------------------------------------------------------------------------------------
def _months_back(today: dt.date, k: int) -> tuple[int, int]:
    y, m = today.year, today.month - k
    while m < 1:
        y, m = y - 1, m + 12
    return y, m


def _bill(s, unit, item, period: str, amount: str, *, due: dt.date, disputed: bool = False, source: str = ""):
    from models.fees import Bill

    bill = Bill(
        estate_id=unit.estate_id,
        unit_id=unit.id,
        item_id=item.id,
        period=period,
        source=source,
        quantity=D(1),
        unit_price=D(amount),
        amount=D(amount),
        issued_on=due - dt.timedelta(days=item.payment_term_days),
        due_date=due,
        disputed=disputed,
        dispute_note="面积有误" if disputed else None,
    )
    s.add(bill)
    s.flush()
    return bill


def _item(s, name: str = "物业服务费"):
    from models.fees import FeeItem

    item = FeeItem(code=f"C{uuid.uuid4().hex[:8]}", name=name, kind="property_service")
    s.add(item)
    s.flush()
    return item


def three_months(app, make_unit, *, extra: bool = False) -> dict:
    """A unit with three months of open property-fee bills, made newest first (the form must
    order them itself). With ``extra``: the middle month has a late fee (part waived) and a part
    payment, and there are a paid bill (not listed) and a disputed one (listed, not ticked)."""
    from app.extensions import db
    from models.archives import Unit
    from models.fees import local_today
    from models.payments import record_payment

    ids = make_unit()
    with app.app_context():
        s = db.session
        unit = s.get(Unit, ids["unit"])
        item = _item(s)
        today = local_today()
        bills = {}
        for k in (1, 2, 3):  # newest first
            y, m = _months_back(today, k)
            period = f"{y}-{m:02d}"
            bills[k] = _bill(s, unit, item, period, "100.00", due=dt.date(y, m, 1) + dt.timedelta(days=45))
        out = {**ids, "item": item.id, "item_name": item.name, "unit_code": unit.code}
        out["bills"] = [bills[3].id, bills[2].id, bills[1].id]  # oldest first
        out["periods"] = [bills[3].period, bills[2].period, bills[1].period]
        if extra:
            middle = bills[2]
            middle.late_fee, middle.late_fee_waived = D("3.50"), D("1.00")
            y, m = _months_back(today, 6)
            paid = _bill(s, unit, item, f"{y}-{m:02d}", "100.00", due=dt.date(y, m, 1) + dt.timedelta(days=45))
            y, m = _months_back(today, 4)
            disputed = _bill(
                s, unit, _item(s, "停车费"), f"{y}-{m:02d}", "60.00", due=dt.date(y, m, 20), disputed=True
            )
            s.commit()
            record_payment(s, unit, "100.00", "cash", bill_ids=[paid.id])
            record_payment(s, unit, "20.00", "cash", bill_ids=[middle.id])
            out.update(paid=paid.id, disputed=disputed.id)
        s.commit()
        db.session.remove()
    return out


@pytest.fixture()
def unit3(app, make_unit):
    return three_months(app, make_unit)


# --- reading pages ---------------------------------------------------------------------------------
def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def form_rows(page: str) -> list[dict]:
    """The bill rows of the collect form: id, ticked, the version and amount due sent back, cells."""
    rows = []
    for bid, body in re.findall(r'<tr class="desk-collect-bill[^"]*" data-bill="(\d+)">(.*?)</tr>', page, re.S):
        box = re.search(r'<input type="checkbox" name="bill"[^>]*>', body).group(0)
        rows.append(
            {
                "id": int(bid),
                "ticked": " checked" in box,
                "data_due": re.search(r'data-due="([^"]+)"', box).group(1),
                "version": int(re.search(rf'name="version_{bid}" value="(\d+)"', body).group(1)),
                "due": re.search(rf'name="due_{bid}" value="([^"]+)"', body).group(1),
                "cells": [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)],
            }
        )
    return rows


def form_post(rows: list[dict], **fields) -> dict:
    """What the browser sends for the ticked rows (each with its version and amount due)."""
    data = {"bill": [str(r["id"]) for r in rows if r["ticked"]], "method": "cash", "paid_on": "", "extra": ""}
    for r in rows:
        data[f"version_{r['id']}"] = str(r["version"])
        data[f"due_{r['id']}"] = r["due"]
    data.update(fields)
    return data


def row_with(page: str, needle: str) -> str:
    """The text of the one table row that holds ``needle``."""
    rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S) if needle in _text(r)]
    assert len(rows) == 1, f"{len(rows)} rows hold {needle!r}"
    return _text(rows[0])


def counts(app) -> tuple[int, int]:
    """Payments and receipt numbers taken, company-wide."""
    from app.extensions import db
    from models.payments import Payment, ReceiptCounter

    with app.app_context():
        out = (
            db.session.execute(select(func.count(Payment.id))).scalar(),
            db.session.execute(select(func.coalesce(func.sum(ReceiptCounter.last_number), 0))).scalar(),
        )
        db.session.remove()
    return out


def bill_state(app, bill_id: int) -> tuple[str, Decimal]:
    from app.extensions import db
    from models.fees import Bill

    with app.app_context():
        b = db.session.get(Bill, bill_id)
        out = (b.status, b.paid_amount)
        db.session.remove()
    return out


# --- the form --------------------------------------------------------------------------------------
def test_the_form_lists_open_bills_oldest_first_with_what_is_due(app, make_unit, web):
    from models.fees import local_today

    u = three_months(app, make_unit, extra=True)
    staff = web("Staff")
    page = staff.get(f"/unit/show/{u['unit']}").get_data(as_text=True)
    assert f'href="/unit/collect/{u["unit"]}"' in page and ">收款</a>" in page, "no 收款 button on the unit's page"
    resp = staff.get(f"/unit/collect/{u['unit']}")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    rows = form_rows(page)
    # Oldest first by due date: the three months, the disputed parking bill in its place; the paid
    # bill is not there.
    assert [r["id"] for r in rows] == [u["disputed"], *u["bills"]], rows
    assert u["paid"] not in [r["id"] for r in rows]
    cells = {r["id"]: r["cells"] for r in rows}
    # period, item, due date, amount, late fee (less the waiver), paid, due now
    jan, feb, mar = u["bills"]
    assert cells[jan][1:] == [u["periods"][0], u["item_name"], cells[jan][3], "100.00", "0.00", "0.00", "100.00"]
    assert cells[feb][1] == u["periods"][1] and cells[feb][4:] == ["100.00", "2.50", "20.00", "82.50"]
    assert "部分已缴" in cells[feb][2]
    assert "有争议" in cells[u["disputed"]][2]
    # Ticked: the undisputed ones; each box sends the amount due it showed.
    assert [r["ticked"] for r in rows] == [False, True, True, True]
    assert {r["id"]: r["due"] for r in rows}[feb] == "82.50" == {r["id"]: r["data_due"] for r in rows}[feb]
    assert "¥282.50" in _text(re.search(r'class="desk-collect-total".*?</strong>', page, re.S).group(0))
    assert "预存余额" in page and "¥0.00" in _text(re.search(r"desk-prepaid.*?</strong>", page, re.S).group(0))
    # The date is today by default; the methods are the payment methods, cash first chosen.
    assert f'name="paid_on" value="{local_today().isoformat()}"' in page
    methods = re.findall(r'<input type="radio" name="method" value="(\w+)"\s*(checked)?\s*>', page)
    assert [m for m, _ in methods] == ["cash", "bank_transfer", "wechat", "alipay"] and methods[0][1]
    # Nothing asks for an internal id: the only typed fields are money and words.
    typed = set(re.findall(r'<input type="(?:text|number)"[^>]*name="(\w+)"', page))
    assert typed == {"extra", "payer_name", "reference"}, typed
    # All in Chinese: the labels, the buttons.
    for word in ("账期", "收费项目", "缴费期限", "应收金额", "滞纳金", "已收", "应缴", "付款方式", "收款日期", "交易流水号"):
        assert word in page, word
    assert "确认收款并打印收据" in page


def test_saving_allocates_oldest_first_and_opens_the_receipt(app, unit3, web):
    from app.extensions import db
    from models.payments import Payment, PaymentAllocation, prepaid_balance

    staff = web("Staff")
    rows = form_rows(staff.get(f"/unit/collect/{unit3['unit']}").get_data(as_text=True))
    assert [r["id"] for r in rows] == unit3["bills"] and all(r["ticked"] for r in rows)
    data = form_post(rows, method="wechat", extra="50.00", reference="WX-4200001", payer_name="张三")
    resp = staff.post(f"/unit/collect/{unit3['unit']}", data=data)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    m = re.fullmatch(r"/payment/receipt/(\d+)\?saved=1", resp.headers["Location"])
    assert m, resp.headers["Location"]
    pid = int(m.group(1))
    with app.app_context():
        p = db.session.get(Payment, pid)
        assert (p.amount, p.method, p.reference, p.payer_name, p.unit_id) == (
            D("350.00"),
            "wechat",
            "WX-4200001",
            "张三",
            unit3["unit"],
        )
        allocs = db.session.execute(
            select(PaymentAllocation.bill_id, PaymentAllocation.amount)
            .where(PaymentAllocation.payment_id == pid)
            .order_by(PaymentAllocation.id)
        ).all()
        assert [a.bill_id for a in allocs] == unit3["bills"], "allocated oldest first"
        assert [a.amount for a in allocs] == [D("100.00")] * 3
        assert prepaid_balance(db.session, unit3["unit"]) == D("50.00")
        receipt_no = p.receipt_no
        db.session.remove()
    assert all(bill_state(app, b) == ("paid", D("100.00")) for b in unit3["bills"])
    # The receipt, ready to print: its lines oldest first, the prepaid rest, the collector's name.
    page = staff.get(resp.headers["Location"]).get_data(as_text=True)
    assert "收款收据" in page and "收款已保存" in page and receipt_no in page and "data-desk-print" in page
    lines = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td><td>(.*?)</td><td class=\"num\">(.*?)</td></tr>", page)
    assert [(n, item, period, amt) for n, item, period, amt in lines] == [
        ("1", unit3["item_name"], unit3["periods"][0], "100.00"),
        ("2", unit3["item_name"], unit3["periods"][1], "100.00"),
        ("3", unit3["item_name"], unit3["periods"][2], "100.00"),
        ("4", "预收款（转入预存余额）", "", "50.00"),
    ]
    assert "叁佰伍拾元整" in page and "¥350.00" in page
    assert "收款人：StaffTester" in page and "收款人：staff" not in page  # the name, not the login
    assert "desk/print.js" in page and f'href="/unit/show/{unit3["unit"]}"' in page
    # The unit now owes nothing: the form says so and still takes money in advance.
    page = staff.get(f"/unit/collect/{unit3['unit']}").get_data(as_text=True)
    assert form_rows(page) == [] and "暂无未缴账单" in page and "¥50.00" in page


def test_a_choice_of_bills_and_money_in_advance_only(app, unit3, web):
    from app.extensions import db
    from models.payments import Payment, PaymentAllocation, prepaid_balance

    staff = web("Staff")
    rows = form_rows(staff.get(f"/unit/collect/{unit3['unit']}").get_data(as_text=True))
    newest = rows[-1]
    for r in rows:
        r["ticked"] = r is newest
    resp = staff.post(f"/unit/collect/{unit3['unit']}", data=form_post(rows, method="cash"))
    assert resp.status_code == 302, resp.get_data(as_text=True)[:1500]
    assert bill_state(app, newest["id"]) == ("paid", D("100.00"))
    assert bill_state(app, unit3["bills"][0]) == ("open", D("0.00"))  # only what was ticked
    # Nothing ticked, an amount in advance: all of it is prepaid balance.
    rows = form_rows(staff.get(f"/unit/collect/{unit3['unit']}").get_data(as_text=True))
    for r in rows:
        r["ticked"] = False
    resp = staff.post(f"/unit/collect/{unit3['unit']}", data=form_post(rows, extra="300", method="alipay"))
    assert resp.status_code == 302
    pid = int(re.search(r"/payment/receipt/(\d+)", resp.headers["Location"]).group(1))
    with app.app_context():
        assert db.session.get(Payment, pid).amount == D("300.00")
        assert db.session.execute(select(func.count()).where(PaymentAllocation.payment_id == pid)).scalar() == 0
        assert prepaid_balance(db.session, unit3["unit"]) == D("300.00")
        db.session.remove()


def test_from_a_bill_page_that_bill_is_ticked(app, unit3, web):
    staff = web("Staff")
    middle = unit3["bills"][1]
    page = staff.get(f"/bill/show/{middle}").get_data(as_text=True)
    assert f'href="/bill/collect/{middle}"' in page, "no 收款 button on the bill's page"
    resp = staff.get(f"/bill/collect/{middle}")
    assert resp.status_code == 302 and resp.headers["Location"] == f"/unit/collect/{unit3['unit']}?bill={middle}"
    rows = form_rows(staff.get(resp.headers["Location"]).get_data(as_text=True))
    assert [r["id"] for r in rows if r["ticked"]] == [middle]
    resp = staff.post(f"/unit/collect/{unit3['unit']}", data=form_post(rows))
    assert resp.status_code == 302
    assert bill_state(app, middle) == ("paid", D("100.00"))
    # A paid bill offers no 收款; its link, asked for anyway, opens the unit's form with nothing of it.
    page = staff.get(f"/bill/show/{middle}").get_data(as_text=True)
    assert f'href="/bill/collect/{middle}"' not in page
    rows = form_rows(staff.get(f"/unit/collect/{unit3['unit']}?bill={middle}").get_data(as_text=True))
    assert [r["id"] for r in rows if r["ticked"]] == [unit3["bills"][0], unit3["bills"][2]]


# --- who may -------------------------------------------------------------------------------------
def test_the_committee_never_sees_the_button(app, unit3, web, api):
    for role in ("Staff", "Supervisor", "Manager", "Admin"):
        page = web(role).get(f"/unit/show/{unit3['unit']}").get_data(as_text=True)
        assert f'href="/unit/collect/{unit3["unit"]}"' in page, role
        assert web(role).get(f"/unit/collect/{unit3['unit']}").status_code == 200, role
        assert api(role).get(f"/api/v1/payment/collect/{unit3['unit']}").status_code == 200, role
    committee = web("Committee")
    page = committee.get(f"/unit/show/{unit3['unit']}")
    assert page.status_code == 200 and "/collect/" not in page.get_data(as_text=True)
    assert "收款记录" not in page.get_data(as_text=True)  # the Committee reads no payments
    before = counts(app)
    assert committee.get(f"/unit/collect/{unit3['unit']}").status_code == 403
    assert committee.post(f"/unit/collect/{unit3['unit']}", data={"extra": "10"}).status_code == 403
    assert committee.get(f"/bill/collect/{unit3['bills'][0]}").status_code == 403
    assert api("Committee").get(f"/api/v1/payment/collect/{unit3['unit']}").status_code == 403
    resp = api("Committee").post(f"/api/v1/payment/collect/{unit3['unit']}", json={"extra": "10", "method": "cash"})
    assert resp.status_code == 403
    assert counts(app) == before


def test_a_unit_of_another_estate_is_not_there(app, unit3, make_unit):
    """A Staff member of another estate: the unit, its bills, its form, its API: 404, nothing written."""
    from app.extensions import db
    from app.seed import ensure_user

    other = make_unit()
    name = f"staff_{uuid.uuid4().hex[:6]}"
    with app.app_context():
        ensure_user(app.appbuilder.sm, name, "Staff", "别处", "员工", cf.PASSWORD, estates=[other["estate"]])
        db.session.remove()
    client = cf.FreshContextClient(app, app.test_client())
    assert client.post("/login/", data={"username": name, "password": cf.PASSWORD}).status_code in (302, 303)
    token = app.test_client().post(
        "/api/v1/security/login", json={"username": name, "password": cf.PASSWORD, "provider": "db"}
    ).json["access_token"]
    api = cf.FreshContextClient(app, app.test_client())
    auth = {"Authorization": f"Bearer {token}"}
    before = counts(app)
    assert client.get(f"/unit/show/{unit3['unit']}").status_code == 404
    assert client.get(f"/unit/collect/{unit3['unit']}").status_code == 404
    assert client.post(f"/unit/collect/{unit3['unit']}", data={"bill": str(unit3["bills"][0])}).status_code == 404
    assert client.get(f"/bill/collect/{unit3['bills'][0]}").status_code == 404
    assert api.get(f"/api/v1/payment/collect/{unit3['unit']}", headers=auth).status_code == 404
    assert api.post(f"/api/v1/payment/collect/{unit3['unit']}", headers=auth, json={"extra": "5"}).status_code == 404
    assert api.get(f"/api/v1/payment/balance/{unit3['unit']}", headers=auth).status_code == 404
    # Their own estate's unit: the form opens; another unit's bill ticked on it is refused (422).
    assert client.get(f"/unit/collect/{other['unit']}").status_code == 200
    resp = client.post(
        f"/unit/collect/{other['unit']}", data={"bill": str(unit3["bills"][0]), "method": "cash", "extra": ""}
    )
    assert resp.status_code == 422 and "所选账单须为本房屋的账单" in resp.get_data(as_text=True)
    assert counts(app) == before


# --- refusals --------------------------------------------------------------------------------------
def test_refusals_are_4xx_naming_the_field_and_write_nothing(app, unit3, make_unit, web):
    from app.extensions import db
    from models.fees import Bill

    staff = web("Staff")
    url = f"/unit/collect/{unit3['unit']}"
    rows = form_rows(staff.get(url).get_data(as_text=True))
    other = three_months(app, make_unit)
    before = counts(app)

    def refused(data, status, field_label, words):
        resp = staff.post(url, data=data)
        page = resp.get_data(as_text=True)
        assert resp.status_code == status, (data, _text(page[page.find("desk-collect-page"):])[:1500])
        errors = _text(re.search(r'class="alert alert-danger[^"]*">(.*?)</div>', page, re.S).group(1))
        assert field_label in errors and words in errors, errors
        return page

    nothing = [{**r, "ticked": False} for r in rows]
    page = refused(form_post(nothing), 422, "账单：", "请勾选要收的账单，或填写预存金额")
    assert "desk-error-bills" in page
    page = refused(form_post(rows, extra="-5"), 422, "预存金额：", "不能为负数")
    assert 'value="-5"' in page and [r["ticked"] for r in form_rows(page)] == [True] * 3  # the input kept
    refused(form_post(rows, extra="1.234"), 422, "预存金额：", "最多 2 位小数")
    refused(form_post(rows, extra="一百"), 422, "预存金额：", "金额无效")
    refused(form_post(rows, method="card"), 422, "付款方式：", "请选择付款方式")
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    refused(form_post(rows, paid_on=tomorrow), 422, "收款日期：", "不能晚于今天")
    refused(form_post(rows, paid_on="2020-13-01"), 422, "收款日期：", "YYYY-MM-DD")
    refused(form_post(rows, paid_on="2019-01-01"), 422, "收款日期：", "一年前")
    refused(form_post(rows, payer_name="张" * 65), 422, "交款人：", "最多 64 字")
    # A bill of another unit put on this form.
    foreign = {**rows[0], "id": other["bills"][0]}
    refused(form_post([*rows, foreign]), 422, "账单：", "所选账单须为本房屋的账单")
    # A stale version, or a different amount due than shown (the late-fee job changes amounts
    # without a new version): a conflict naming the bill, nothing collected.
    with app.app_context():  # someone notes something on the middle bill since the form was read
        db.session.get(Bill, rows[1]["id"]).dispute_note = "业主来电核对面积"
        db.session.commit()
        db.session.remove()
    refused(form_post(rows), 409, unit3["periods"][1], "已被他人修改")
    rows = form_rows(staff.get(url).get_data(as_text=True))
    assert rows[1]["version"] == 2
    with app.app_context():  # the late-fee job, since the form was read
        db.session.execute(text("UPDATE bill SET late_fee = 1.20 WHERE id = :id"), {"id": rows[2]["id"]})
        db.session.commit()
        db.session.remove()
    page = refused(form_post(rows), 409, unit3["periods"][2], "应缴 101.20")
    assert [r["due"] for r in form_rows(page)] == ["100.00", "100.00", "101.20"]  # the form as it is now
    assert counts(app) == before
    assert all(bill_state(app, b) == ("open", D("0.00")) for b in unit3["bills"])
    # Paid by someone else meanwhile (another clerk, the API): the form read before is refused.
    resp = web("Supervisor").post(url, data=form_post(form_rows(staff.get(url).get_data(as_text=True))))
    assert resp.status_code == 302
    refused(form_post(rows), 409, unit3["periods"][0], "已由他人收款")
    with app.app_context():
        assert [db.session.get(Bill, b).paid_amount for b in unit3["bills"]] == [D("100.00"), D("100.00"), D("101.20")]
        db.session.remove()
    assert counts(app) == (before[0] + 1, before[1] + 1)


def test_the_api_collects_the_same_way(app, unit3, make_unit, api):
    staff = api("Staff")
    sheet = staff.get(f"/api/v1/payment/collect/{unit3['unit']}")
    assert sheet.status_code == 200
    data = sheet.json
    assert [b["id"] for b in data["bills"]] == unit3["bills"] and all(b["ticked"] for b in data["bills"])
    assert [b["due"] for b in data["bills"]] == ["100.00"] * 3 and data["prepaid_balance"] == "0.00"
    assert data["unit"]["code"] == unit3["unit_code"] and set(data["methods"]) == {"cash", "bank_transfer", "wechat", "alipay"}
    url = f"/api/v1/payment/collect/{unit3['unit']}"
    before = counts(app)
    cases = [
        ({"method": "cash"}, "bills"),
        ({"method": "cash", "extra": 1.5}, "extra"),
        ({"method": "card", "extra": "1"}, "method"),
        ({"method": "cash", "extra": "1", "paid_on": "tomorrow"}, "paid_on"),
        ({"method": "cash", "bills": "1,2"}, "bills"),
        ({"method": "cash", "bills": [{"id": unit3["bills"][0], "versio": 1}]}, "bills"),
        ({"method": "cash", "bills": [three_months(app, make_unit)["bills"][0]]}, "bills"),
        ({"method": "cash", "amount": "100"}, "amount"),
    ]
    for body, field in cases:
        resp = staff.post(url, json=body)
        assert resp.status_code == 422 and field in resp.json["message"], (body, resp.json)
    stale = [{"id": b["id"], "version": b["version"] + (b is data["bills"][0]), "due": b["due"]} for b in data["bills"]]
    resp = staff.post(url, json={"bills": stale, "method": "cash"})
    assert resp.status_code == 409 and "已被他人修改" in resp.json["message"]["bills"][0], resp.json
    assert counts(app) == before
    # As read, in any order: allocated oldest first, the rest prepaid.
    chosen = [{"id": b["id"], "version": b["version"], "due": b["due"]} for b in reversed(data["bills"])]
    resp = staff.post(url, json={"bills": chosen, "extra": "0.50", "method": "bank_transfer", "reference": "T1"})
    assert resp.status_code == 201, resp.json
    assert [a["bill"] for a in resp.json["allocations"]] == unit3["bills"]
    assert resp.json["amount_in_words"] == "叁佰元伍角整" and resp.json["prepaid_balance"] == "0.50"
    again = staff.post(url, json={"bills": chosen, "method": "cash"})
    assert again.status_code == 409 and "已由他人收款" in again.json["message"]["bills"][0]
    assert staff.get(f"/api/v1/payment/{resp.json['id']}/receipt").json["receipt_no"] == resp.json["receipt_no"]
    assert counts(app) == (before[0] + 1, before[1] + 1)
    spec = api("Admin").get("/api/v1/_openapi").json
    assert {"get", "post"} <= set(spec["paths"]["/api/v1/payment/collect/{unit_id}"])


# --- two clerks at once ----------------------------------------------------------------------------
def test_two_clerks_collecting_the_same_bills_one_wins_the_other_is_told(app, unit3):
    """Two real sessions on PostgreSQL: clerk A holds the unit's money lock (collected, not yet
    committed); clerk B's collect of the same bills waits on it (seen in pg_locks), then, once A
    commits, finds them paid: BillsChanged naming the bill, nothing written by B."""
    from app.extensions import db
    from models.archives import Unit
    from models.payments import BillsChanged, collect_payment, open_bills_of

    with app.app_context():
        read = [{"id": b["id"], "version": b["version"], "due": b["outstanding"]} for b in open_bills_of(db.session, unit3["unit"])]
        db.session.remove()
    a_holds, b_started, a_may_commit = threading.Event(), threading.Event(), threading.Event()
    out: dict[str, object] = {}

    def clerk(name: str):
        try:
            with app.app_context():
                s = db.session
                pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
                out[f"{name}_pid"] = pid
                if name == "b":
                    a_holds.wait(30)
                    b_started.set()
                try:
                    p = collect_payment(s, s.get(Unit, unit3["unit"]), read, method="cash")
                    if name == "a":
                        a_holds.set()
                        a_may_commit.wait(30)
                    s.commit()
                    out[name] = p.receipt_no
                except BillsChanged as e:
                    s.rollback()
                    out[name] = e
                finally:
                    db.session.remove()
        except Exception as e:  # pragma: no cover - reported below
            out[name] = e

    ta, tb = threading.Thread(target=clerk, args=("a",)), threading.Thread(target=clerk, args=("b",))
    ta.start()
    tb.start()
    assert b_started.wait(30)
    waited = False
    with app.app_context():  # B is blocked on a lock A holds
        for _ in range(100):
            waited = bool(
                db.session.execute(
                    text("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = :pid"), {"pid": out.get("b_pid")}
                ).scalar()
            )
            if waited:
                break
            time.sleep(0.05)
        db.session.remove()
    a_may_commit.set()
    ta.join(60)
    tb.join(60)
    assert waited, "the second clerk did not wait for the first one's lock"
    assert isinstance(out["a"], str), out
    assert isinstance(out["b"], BillsChanged), out
    assert "已由他人收款" in str(out["b"]) and unit3["periods"][0] in str(out["b"])
    assert all(bill_state(app, b) == ("paid", D("100.00")) for b in unit3["bills"])


def test_two_clerks_posting_the_form_at_once(app, unit3, web):
    """The same through the screens: two signed-in clerks send the form they both read at the same
    moment; one is taken to the receipt, the other gets the form back with the conflict (409)."""
    clerks = [web("Staff"), web("Supervisor")]
    url = f"/unit/collect/{unit3['unit']}"
    forms = [form_post(form_rows(c.get(url).get_data(as_text=True))) for c in clerks]
    before = counts(app)
    barrier = threading.Barrier(2)
    answers: list = [None, None]

    def send(i):
        barrier.wait()
        answers[i] = clerks[i].post(url, data=forms[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(a.status_code for a in answers)
    assert codes == [302, 409], codes
    loser = next(a for a in answers if a.status_code == 409).get_data(as_text=True)
    assert "已由他人收款" in _text(re.search(r'class="alert alert-danger desk-conflict">(.*?)</div>', loser, re.S).group(1))
    assert counts(app) == (before[0] + 1, before[1] + 1)
    assert all(bill_state(app, b) == ("paid", D("100.00")) for b in unit3["bills"])


# --- payments are voided, never edited or deleted ---------------------------------------------------
def test_payments_offer_no_edit_or_delete(app, unit3, web, api):
    from views.registry import REGISTRY

    res = REGISTRY["payment"]
    assert res.deletable is False and not res.edit_columns
    staff = web("Staff")
    resp = staff.post(f"/unit/collect/{unit3['unit']}", data=form_post(form_rows(staff.get(f"/unit/collect/{unit3['unit']}").get_data(as_text=True))))
    pid = int(re.search(r"/payment/receipt/(\d+)", resp.headers["Location"]).group(1))
    for role in ("Staff", "Manager", "Admin"):
        client = web(role)
        listing = client.get("/payment/list/?psize_PaymentView=100").get_data(as_text=True)
        assert f"/payment/show/{pid}" in listing
        assert "/payment/edit/" not in listing and "/payment/delete/" not in listing, role
        show = client.get(f"/payment/show/{pid}").get_data(as_text=True)
        assert "desk-edit" not in show and "/payment/edit/" not in show and "/payment/delete/" not in show, role
        assert client.get(f"/payment/edit/{pid}").status_code == 404, role
        assert client.post(f"/payment/delete/{pid}").status_code in (404, 405), role
        assert api(role).put(f"/api/v1/payment/{pid}", json={"note": "改", "version": 1}).status_code == 405, role
        assert api(role).delete(f"/api/v1/payment/{pid}").status_code == 405, role


def test_a_voided_payment_is_marked_void_wherever_it_appears(app, unit3, web, api):
    staff = web("Staff")
    url = f"/unit/collect/{unit3['unit']}"
    resp = staff.post(url, data=form_post(form_rows(staff.get(url).get_data(as_text=True))))
    pid = int(re.search(r"/payment/receipt/(\d+)", resp.headers["Location"]).group(1))
    receipt_no = api("Staff").get(f"/api/v1/payment/{pid}").json["result"]["receipt_no"]
    # Valid: no mark anywhere.
    assert '<div class="void-mark">' not in staff.get(f"/payment/receipt/{pid}").get_data(as_text=True)
    assert "有效" in row_with(staff.get(f"/unit/show/{unit3['unit']}").get_data(as_text=True), receipt_no)
    # Voided on its page (the declared action, with a reason).
    show = staff.get(f"/payment/show/{pid}").get_data(as_text=True)
    version = re.search(r'<form method="post" action="/payment/void/\d+".*?name="version" value="(\d+)"', show, re.S).group(1)
    resp = staff.post(f"/payment/void/{pid}", data={"reason": "收错房屋", "version": version})
    assert resp.status_code == 302
    assert all(bill_state(app, b) == ("open", D("0.00")) for b in unit3["bills"])
    # The payment list (status column), its page, the printed receipt, the bill's and the unit's lists.
    listing = staff.get(f"/payment/list/?_flt_0_receipt_no={receipt_no}").get_data(as_text=True)
    assert "已作废" in row_with(listing, receipt_no)
    show = staff.get(f"/payment/show/{pid}").get_data(as_text=True)
    assert re.search(r'class="label label-info desk-status">已作废<', show)
    assert "收错房屋" in show and "form method=\"post\" action=\"/payment/void/" not in show  # not offered again
    receipt = staff.get(f"/payment/receipt/{pid}").get_data(as_text=True)
    assert re.search(r'<div class="void-mark">作废</div>', receipt) and "作废原因：收错房屋" in receipt
    for b in unit3["bills"]:
        assert "已作废" in row_with(staff.get(f"/bill/show/{b}").get_data(as_text=True), receipt_no)
    assert "已作废" in row_with(staff.get(f"/unit/show/{unit3['unit']}").get_data(as_text=True), receipt_no)
    assert api("Staff").get(f"/api/v1/payment/{pid}").json["result"]["status"] == "void"
    # The same in English: VOID.
    staff.get("/lang/en")
    try:
        assert "VOID" in row_with(staff.get(f"/payment/list/?_flt_0_receipt_no={receipt_no}").get_data(as_text=True), receipt_no)
        assert re.search(r'<div class="void-mark">VOID</div>', staff.get(f"/payment/receipt/{pid}").get_data(as_text=True))
        assert "VOID" in row_with(staff.get(f"/bill/show/{unit3['bills'][0]}").get_data(as_text=True), receipt_no)
        assert "VOID" in row_with(staff.get(f"/unit/show/{unit3['unit']}").get_data(as_text=True), receipt_no)
        assert ">Collect</a>" in staff.get(f"/unit/show/{unit3['unit']}").get_data(as_text=True)
    finally:
        staff.get("/lang/zh")
