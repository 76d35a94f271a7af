"""Field rules: mainland phone formats, the 18-digit resident ID with its check digit, dates in
order, exact positive areas; bad input answered with a 4xx naming the field, forms and API alike."""

from __future__ import annotations

import datetime as dt

import pytest

from models.validators import (
    check_id_number,
    check_phone,
    check_plate,
    id_check_digit,
    mask_id_number,
    mask_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("+86 13812345678", "13812345678"),
        ("0755-26881234", "0755-26881234"),
        ("010-62345678", "010-62345678"),
        ("075526881234", "075526881234"),
        ("0755-26881234-801", "0755-26881234-801"),
        ("400-123-4567", "400-123-4567"),
    ],
)
def test_valid_phones(raw, expected):
    assert check_phone(raw) == expected


@pytest.mark.parametrize("raw", ["12812345678", "1381234567", "138123456789", "26881234", "0755-123", "abc", "12345"])
def test_invalid_phones(raw):
    with pytest.raises(ValueError, match="电话"):
        check_phone(raw)


def test_id_number_check_digit():
    assert id_check_digit("11010519491231002") == "X"  # the standard's own example
    assert check_id_number("11010519491231002x") == "11010519491231002X"
    with pytest.raises(ValueError):
        check_id_number("110105194912310021")  # wrong check digit
    with pytest.raises(ValueError):
        check_id_number("110105194913310029")  # month 13
    with pytest.raises(ValueError):
        check_id_number("11010519491231002")  # 17 characters
    future = dt.date.today() + dt.timedelta(days=400)
    first17 = f"110105{future:%Y%m%d}001"
    with pytest.raises(ValueError):
        check_id_number(first17 + id_check_digit(first17))


def test_plates():
    assert check_plate("粤b12345") == "粤B12345"
    assert check_plate("粤BD12345") == "粤BD12345"  # new-energy
    with pytest.raises(ValueError):
        check_plate("XX12345")


def test_masks():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("110105194912310029") == "110***********0029"


def test_api_names_the_failing_fields(api, make_unit):
    ids = make_unit()
    resp = api("Staff").post(
        "/api/v1/owner/", json={"name": "王五", "kind": "person", "phone": "12345", "id_number": "110105194912310021"}
    )
    assert resp.status_code == 422
    assert set(resp.json["message"]) == {"phone", "id_number"}
    resp = api("Staff").post(
        "/api/v1/unit/",
        json={"building": ids["building"], "code": "X-1", "gross_area": "0", "use": "residential", "status": "vacant"},
    )
    assert resp.status_code == 422
    assert "gross_area" in resp.json["message"]
    resp = api("Staff").post(
        "/api/v1/unit/",
        json={
            "building": ids["building"],
            "code": "X-2",
            "gross_area": "12.345",
            "use": "residential",
            "status": "vacant",
        },
    )
    assert resp.status_code == 422 and "gross_area" in resp.json["message"]
    resp = api("Staff").post(
        "/api/v1/unit/",
        json={"building": ids["building"], "code": "X-3", "gross_area": "90.5", "use": "palace", "status": "vacant"},
    )
    assert resp.status_code == 422 and "use" in resp.json["message"]
    resp = api("Staff").post(
        "/api/v1/resident/",
        json={
            "unit": ids["unit"],
            "name": "赵六",
            "relation": "tenant",
            "move_in": "2024-05-01",
            "move_out": "2024-04-01",
        },
    )
    assert resp.status_code == 422 and "move_out" in resp.json["message"]
    resp = api("Staff").post("/api/v1/ownership/", json={"unit": ids["unit"], "owner": ids["owner"], "share": "150"})
    assert resp.status_code == 422 and "share" in resp.json["message"]


def test_duplicate_unit_code_is_a_field_error(api, make_unit):
    ids = make_unit()
    body = {"building": ids["building"], "code": "DUP-1", "gross_area": "80", "use": "residential", "status": "vacant"}
    assert api("Staff").post("/api/v1/unit/", json=body).status_code == 201
    resp = api("Staff").post("/api/v1/unit/", json=body)
    assert resp.status_code == 422
    assert "code" in resp.json["message"]


def test_english_messages_on_request(api):
    resp = api("Staff").post("/api/v1/owner/?_l_=en", json={"name": "Li", "kind": "person", "phone": "12345"})
    assert resp.status_code == 422
    assert "Invalid phone number" in resp.json["message"]["phone"][0]


def test_form_rejects_bad_input_with_422_and_keeps_it(web):
    client = web("Staff")
    resp = client.post("/owner/add", data={"name": "表单测试", "kind": "person", "phone": "12345"})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "电话号码格式不正确" in page
    assert 'value="表单测试"' in page  # the clerk's input is still there
    resp = client.post("/owner/add", data={"name": "", "kind": "person", "phone": "13812345678"})
    assert resp.status_code == 422


def test_form_accepts_good_input(web, api):
    resp = web("Staff").post("/owner/add", data={"name": "表单业主", "kind": "person", "phone": "13812340000"})
    assert resp.status_code in (302, 303)
    listing = api("Staff").get("/api/v1/owner/?q=(filters:!((col:name,opr:eq,value:'表单业主')))").json
    assert listing["count"] == 1
