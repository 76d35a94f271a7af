"""Committee never receives an owner's ID number or full phone number."""

from __future__ import annotations

import json

import pytest

PHONE = "13712345678"


@pytest.fixture()
def owner_unit(make_unit):
    return make_unit(phone=PHONE)


def test_committee_gets_masked_phone_in_list_and_detail(api, owner_unit):
    body = api("Committee").get(f"/api/v1/owner/{owner_unit['owner']}").json
    assert body["result"]["phone"] == "137****5678"
    listing = api("Committee").get("/api/v1/owner/?q=(page_size:100,order_column:id,order_direction:desc)").json
    text = json.dumps(listing, ensure_ascii=False)
    assert PHONE not in text
    assert "137****5678" in text


def test_staff_gets_the_full_phone(api, owner_unit):
    body = api("Staff").get(f"/api/v1/owner/{owner_unit['owner']}").json
    assert body["result"]["phone"] == PHONE


def test_committee_cannot_filter_by_phone(api, web, owner_unit):
    q = f"(filters:!((col:phone,opr:sw,value:'{PHONE[:7]}')))"
    assert api("Committee").get(f"/api/v1/owner/?q={q}").status_code == 403
    assert api("Staff").get(f"/api/v1/owner/?q={q}").status_code == 200
    assert web("Committee").get(f"/owner/list/?_flt_0_phone={PHONE}").status_code == 403


def test_committee_screens_show_masked_data(web, owner_unit):
    page = web("Committee").get(f"/owner/show/{owner_unit['owner']}").get_data(as_text=True)
    assert PHONE not in page
    assert "137****5678" in page
    page = web("Committee").get("/owner/list/?psize_OwnerView=100").get_data(as_text=True)
    assert PHONE not in page


def test_id_number_masked_for_committee(api, app, db_session):
    from models.archives import Owner

    owner = Owner(name="证件测试", phone="13600001234", id_number="110101199003074514")
    db_session.add(owner)
    db_session.commit()
    body = api("Committee").get(f"/api/v1/owner/{owner.id}").json
    assert body["result"]["id_number"] == "110***********4514"
    assert api("Manager").get(f"/api/v1/owner/{owner.id}").json["result"]["id_number"] == "110101199003074514"
