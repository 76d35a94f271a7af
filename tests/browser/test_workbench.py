"""The workbench in the browser: each role signs in and lands on it; a tile, clicked, opens the
list it counted, with that named view marked and the same number of rows."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import sign_in


@pytest.mark.parametrize("role", ["Staff", "Supervisor", "Manager"])
def test_a_tile_opens_the_list_it_counts(page, role, artifacts):
    sign_in(page, role.lower())
    page.wait_for_selector(".desk-workbench")
    page.screenshot(path=str(artifacts / f"workbench-{role.lower()}.png"), full_page=True)
    tiles = page.locator("a.desk-tile")
    assert tiles.count() >= 5, page.content()[:1500]
    label = tiles.first.locator(".desk-tile-label").inner_text().strip()
    count = int(tiles.first.locator(".desk-tile-count").inner_text())
    with page.expect_navigation():
        tiles.first.click()
    assert "preset=" in page.url, page.url
    assert page.locator(".desk-presets .active").inner_text().strip() == label
    page.screenshot(path=str(artifacts / f"workbench-{role.lower()}-tile.png"), full_page=True)
    body = page.inner_text("body")
    if count:
        m = re.search(r"记录数目:\s*(\d+)", body)
        assert m and int(m.group(1)) == count, (label, count, m and m.group(1))
    else:
        assert "没有找到记录" in body


def test_the_committee_reads_figures_and_nothing_personal(page, artifacts):
    sign_in(page, "committee")
    page.wait_for_selector(".desk-workbench")
    page.screenshot(path=str(artifacts / "workbench-committee.png"), full_page=True)
    assert page.locator("a.desk-tile").count() == 0
    assert page.locator(".desk-panel-desk-figures").is_visible()
    assert page.locator(".desk-panel-my-tickets").count() == 0
    with page.expect_navigation():
        page.locator(".desk-panel-desk-figures a", has_text="服务台报表").click()
    assert "/ticket/report" in page.url
