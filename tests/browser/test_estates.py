"""Several estates in the browser: a company-level user reads every estate's residents side by side
(a 小区 column) and narrows the list to one estate with the search; a Staff member of one estate
is offered and shown that estate only. Clicked from the home page, never typed as URLs."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD


@pytest.fixture(scope="module")
def two_estates(app):
    from flask_appbuilder.security.sqla.models import User

    from app.extensions import db
    from app.seed import ensure_user
    from models.archives import Building, Estate, Owner, Resident, Unit
    from models.base import acting_as

    tag = uuid.uuid4().hex[:4].upper()
    names = {"A": f"东区花园{tag}", "B": f"西区华庭{tag}"}
    with app.app_context():
        admin = db.session.execute(select(User.id).where(User.username == "admin")).scalar_one()
        ids = {}
        with acting_as(admin):
            for key, name in names.items():
                estate = Estate(code=f"BE{key}{tag}", name=name)
                unit = Unit(
                    building=Building(estate=estate, code="1", name="1栋"),
                    code="1-1-101",
                    floor=1,
                    gross_area=Decimal("80.00"),
                )
                owner = Owner(name=f"{key}业主{tag}", phone="13800001111")
                db.session.add_all([estate, unit, owner])
                db.session.flush()
                db.session.add(
                    Resident(
                        unit_id=unit.id, owner=owner, name=f"{key}住户{tag}", phone="13800002222", move_in=dt.date(2024, 1, 1)
                    )
                )
                ids[key] = estate.id
            db.session.commit()
        ensure_user(app.appbuilder.sm, f"estate_staff_{tag.lower()}", "Staff", "东区", "客服", PASSWORD, estates=[ids["A"]])
        db.session.commit()
        db.session.remove()
    return {"names": names, "ids": ids, "staff": f"estate_staff_{tag.lower()}", "tag": tag}


def _residents_by_menu(page) -> None:
    page.locator("a.dropdown-toggle", has_text="业主档案").first.click()
    with page.expect_navigation():
        page.locator("ul.dropdown-menu a", has_text="住户").first.click()
    assert page.url.endswith("/resident/list/"), page.url


def _estate_filter(page) -> list[str]:
    """Open the search, add the 小区 condition; the estates it offers."""
    page.locator("a.accordion-toggle", has_text="搜索").click()
    page.locator("button", has_text="添加过滤条件").click()
    page.locator("a.filter[name=estate]").click()
    select_box = page.locator("table.filters select").last
    select_box.wait_for()
    return select_box.locator("option").all_inner_texts()


def _estate_cells(page) -> list[str]:
    headers = [t.strip() for t in page.locator("table:not(.filters) thead th").all_inner_texts()]
    col = headers.index("小区")
    return [row.locator("td").nth(col).inner_text().strip() for row in page.locator("table:not(.filters) tbody tr").all()]


def test_a_company_user_reads_every_estate_and_narrows_to_one(page, two_estates, artifacts):
    names = two_estates["names"]
    sign_in(page, "admin")
    _residents_by_menu(page)
    offered = _estate_filter(page)
    assert names["A"] in offered and names["B"] in offered, offered
    page.locator("table.filters select").last.select_option(label=names["B"])
    with page.expect_navigation():
        page.locator("#filter_form [type=submit]").first.click()
    page.screenshot(path=str(artifacts / "estates-admin-residents-of-one-estate.png"), full_page=True)
    cells = _estate_cells(page)
    assert cells and set(cells) == {names["B"]}, cells
    assert f"B住户{two_estates['tag']}" in page.inner_text("table:not(.filters)")


def test_a_staff_member_of_one_estate_meets_no_other(page, two_estates, artifacts):
    names = two_estates["names"]
    sign_in(page, two_estates["staff"])
    _residents_by_menu(page)
    page.screenshot(path=str(artifacts / "estates-staff-residents.png"), full_page=True)
    assert set(_estate_cells(page)) == {names["A"]}
    table = page.inner_text("table:not(.filters)")
    assert f"A住户{two_estates['tag']}" in table and f"B住户{two_estates['tag']}" not in table
    offered = _estate_filter(page)
    assert names["A"] in offered and names["B"] not in offered, offered
