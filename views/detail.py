"""The detail page, from declarations: the resource's sections (each shown when it applies), its
related lists, its actions (views/actions.py). Every value goes through the same visibility rules
as the lists (views/visibility.py): what a role may not read is not on the page."""

from __future__ import annotations

from flask import url_for
from sqlalchemy import select

from views.registry import REGISTRY, Related, Resource


def sections_as_fieldsets(resource: Resource, item, shown: set[str]) -> list | None:
    """FAB fieldsets for the record: the sections that apply to it, with the columns it may see."""
    if not resource.sections:
        return None
    sets = []
    for section in resource.sections:
        if section.when is not None and not section.when(item):
            continue
        cols = [c for c in section.columns if c in shown]
        if cols:
            sets.append((section.title, {"fields": cols, "expanded": True}))
    return sets


def record_links(res: Resource, item, columns) -> dict[str, str]:
    """Related records link to each other: a detail page's ``unit.code`` / ``owner.name`` is a link
    to that unit's / owner's page, for the user who may read it (the page itself checks the
    estate). Any resource's columns into any registered model, without a line per resource."""
    from sqlalchemy import inspect as sa_inspect

    from views.base import rights
    from views.visibility import resources_by_model

    serving = resources_by_model()
    links: dict[str, str] = {}
    mapper = sa_inspect(res.model)
    for col in columns:
        rel_name = col.split(".")[0]
        rel = mapper.relationships.get(rel_name)
        if rel is None or rel.uselist:
            continue
        target = getattr(item, rel_name, None)
        names = serving.get(rel.mapper.class_, [])
        if target is None or not names:
            continue
        # A record served by two resources (a request and its archive): the one that holds it.
        name = next((n for n in names if REGISTRY[n].name.endswith("_archive") == (getattr(target, "archived_at", None) is not None)), names[0])
        if "read" in rights(name):
            links[col] = url_for(f"{REGISTRY[name].class_stem}View.show", pk=target.id)
    return links


def _cell(res: Resource, obj, col: str):
    from app.security import person_at
    from views.excel import resolve
    from views.fields import show_value

    name = person_at(obj, col)  # a person by name, not login
    if name is not None:
        return name
    value = resolve(obj, col)
    if col in res.choices and value in res.choices[col]:
        value = res.choices[col][value]
    return show_value(value)


def related_lists(res: Resource, item) -> list[dict]:
    """The related lists of a record's detail page, as the user may see them."""
    from views.base import rights, sees_personal
    from views.scope import clause_for
    from views.visibility import mask_value, redact_values, visible

    blocks = []
    for rel in res.related:
        if rel.when is not None and not rel.when(item):
            continue
        if rel.rows is not None:
            rows = rel.rows(item)
            cols = list(rel.columns)
            blocks.append(
                {
                    "name": rel.name,
                    "label": rel.label,
                    "headers": [rel.labels.get(c, c) for c in cols],
                    "rows": [{"cells": [row.get(c, "") for c in cols], "url": row.get("_url")} for row in rows],
                }
            )
            continue
        other = REGISTRY[rel.resource]
        if "read" not in rights(other.name):
            continue
        cols = visible(other, list(rel.columns))
        model = other.model
        from app.extensions import db

        stmt = select(model).where(getattr(model, rel.via) == item.id).order_by(model.id.desc()).limit(rel.limit)
        scope = clause_for(other)  # only rows of the estates the user works for (views/scope.py)
        if scope is not None:
            stmt = stmt.where(scope)
        for flt in other.base_filters:  # the same rows the other resource's list would show
            column, _cls, _value = flt
            if _cls.__name__ == "FilterIsNull":
                stmt = stmt.where(getattr(model, column).is_(None))
        objs = db.session.execute(stmt).scalars().all()
        values = redact_values(model, objs, [{c: _cell(other, o, c) for c in cols} for o in objs])
        personal = {} if sees_personal(other.name) else other.personal_columns()
        rows = []
        for obj, row in zip(objs, values, strict=True):
            cells = [mask_value(personal[c], row[c]) if c in personal else row[c] for c in cols]
            rows.append({"cells": cells, "url": url_for(f"{other.class_stem}View.show", pk=obj.id)})
        blocks.append({"name": rel.name, "label": rel.label, "headers": [other.label_of(c) for c in cols], "rows": rows})
    return blocks


__all__ = ["Related", "related_lists", "sections_as_fieldsets"]
