"""Wiring: the factory can be called twice, migrations agree with the models, every label is in
both languages, no page asks for an asset from outside."""

from __future__ import annotations

import re

from views.registry import CATEGORIES, REGISTRY

from .conftest import desk_test_config


def test_create_app_twice_gives_two_working_apps(app, database_url, tokens):
    from app import create_app

    second = create_app(desk_test_config(database_url))
    assert second.appbuilder is not app.appbuilder
    for flask_app in (app, second):
        resp = flask_app.test_client().get("/api/v1/unit/", headers={"Authorization": f"Bearer {tokens['Staff']}"})
        assert resp.status_code == 200


def test_models_and_migrations_agree(app):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from flask_appbuilder import Model

    from app.extensions import db

    with app.app_context():
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Model.metadata)
    assert diff == [], f"models and migrations differ; run `flask db migrate`: {diff}"


def test_migrations_build_sqlite_from_nothing(tmp_path):
    """The embedded default: `flask db upgrade` on an empty SQLite file."""
    from flask_migrate import upgrade
    from sqlalchemy import inspect

    from app import create_app
    from app.extensions import db

    sqlite_app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'desk.db'}", "TESTING": True})
    with sqlite_app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
    assert {"unit", "owner", "resident", "ownership", "change_log", "ab_user"} <= tables


def test_every_label_has_chinese_and_english():
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for name, resource in REGISTRY.items():
        assert cjk.search(resource.label.zh) and resource.label.en, name
        for col in resource.all_columns():
            label = resource.label_of(col)
            assert cjk.search(label.zh), f"{name}.{col} has no Chinese label"
            assert label.en and not cjk.search(label.en), f"{name}.{col} has no English label"
        for col, choices in resource.choices.items():
            for value, label in choices.items():
                assert cjk.search(label.zh) and label.en, f"{name}.{col}={value}"
    for key, (label, _icon) in CATEGORIES.items():
        assert cjk.search(label.zh) and label.en, key


def test_screens_default_to_chinese_and_switch_to_english(web):
    client = web("Staff")
    page = client.get("/unit/list/").get_data(as_text=True)
    assert "房号" in page and "业主档案" in page
    client.get("/lang/en")
    page = client.get("/unit/list/").get_data(as_text=True)
    assert "Unit code" in page and "Archives" in page
    client.get("/lang/zh")
    assert "房号" in client.get("/unit/list/").get_data(as_text=True)


def test_pages_reference_no_outside_host(web):
    client = web("Admin")
    for url in ("/", "/unit/list/", "/owner/add", "/resident/list/"):
        page = client.get(url).get_data(as_text=True)
        outside = re.findall(r"""(?:src|href)=["'](?:https?:)?//([^/"']+)""", page)
        assert outside == [], f"{url} loads from {outside}"


def test_api_errors_are_json(api):
    resp = api("Staff").get("/api/v1/unit/999999999")
    assert resp.status_code == 404 and resp.is_json
    resp = api("Staff").get("/api/v1/no_such_resource/")
    assert resp.status_code == 404 and resp.is_json


def test_readme_documents_every_setting_and_resource():
    """The README's configuration table and role table keep up with config.py and the registry."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    names = re.findall(r'env\("([A-Z_]+)"', (root / "config.py").read_text(encoding="utf-8"))
    missing = [n for n in names if f"`DESK_{n}`" not in readme]
    assert not missing, f"README lacks these settings: {missing}"
    undocumented = [name for name in REGISTRY if f"| {name} |" not in readme]
    assert not undocumented, f"README's role table lacks: {undocumented}"
    actions = readme.split("## Workflow actions", 1)[1].split("\n## ", 1)[0]
    for name, res in REGISTRY.items():
        row = next((line for line in actions.splitlines() if line.startswith(f"| `{name}` |")), "")
        missing = [a.api_path for a in res.actions if f"`{a.api_path}`" not in row]
        assert not missing, f"README's workflow actions table lacks {name}: {missing}"


def _text(resp) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


def test_error_pages_have_the_menu_a_way_back_and_no_english(app, web):
    client = web("Staff")
    resp = client.get("/no/such/page/", headers={"Referer": "http://localhost/unit/list/"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 404
    assert "业主档案" in page, "the menu bar is on the error page"
    assert 'href="http://localhost/unit/list/"' in page and "返回上一页" in page and "返回首页" in page
    assert "页面不存在" in page and "The requested URL" not in page
    # a way back only to this site
    away = client.get("/no/such/page/", headers={"Referer": "http://evil.example/x"}).get_data(as_text=True)
    assert "evil.example" not in away and "返回首页" in away
    # 405 on a screen: ours, with the Allow header kept
    resp = client.delete("/unit/list/")
    assert resp.status_code == 405 and "不支持此操作" in _text(resp) and "GET" in resp.headers["Allow"]
    # an error of the product's own words keeps them (a NUL in the query)
    resp = client.get("/unit/list/?x=%00")
    assert resp.status_code == 400 and "空字符" in _text(resp) and "业主档案" in resp.get_data(as_text=True)
    client.get("/lang/en")
    resp = client.get("/no/such/page/")
    assert resp.status_code == 404 and "Not found" in _text(resp) and "Archives" in resp.get_data(as_text=True)
    client.get("/lang/zh")


def test_the_site_has_a_favicon(app):
    client = app.test_client()
    resp = client.get("/favicon.ico")
    assert resp.status_code == 301
    icon = client.get(resp.headers["Location"])
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data
    assert 'rel="icon"' in client.get("/login/").get_data(as_text=True)


def test_signing_in_logs_no_warning_but_an_unsafe_target_still_does(app, caplog):
    import logging

    from .conftest import PASSWORD

    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_appbuilder"):
        resp = client.post("/login/", data={"username": "staff", "password": PASSWORD})
        assert resp.status_code in (302, 303)
        assert not [r for r in caplog.records if "Invalid redirect" in r.getMessage()]
        client.get("/logout/")
        other = app.test_client()
        resp = other.post(
            "/login/?next=http://evil.example/steal", data={"username": "staff", "password": PASSWORD}
        )
        assert resp.status_code in (302, 303) and "evil.example" not in resp.headers["Location"]
        assert [r for r in caplog.records if "Invalid redirect" in r.getMessage()]
