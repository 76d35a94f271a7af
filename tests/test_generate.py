"""The scale generator (``flask desk generate``) makes data the product itself would accept."""

from __future__ import annotations

from sqlalchemy import func, select

from models.archives import Building, Estate, Owner, Ownership, Resident, Unit
from models.validators import check_id_number, check_phone

UNITS = 500


def test_generate_makes_valid_archives(app):
    from app.extensions import db
    from app.seed import generate

    with app.app_context():
        counts = generate(units=UNITS, estate_prefix="GEN")
        try:
            estate_ids = (
                db.session.execute(select(Estate.id).where(Estate.code.like("GEN%")).order_by(Estate.id))
                .scalars()
                .all()
            )
            assert len(estate_ids) == counts["estate"] == 1
            in_estates = Unit.estate_id.in_(estate_ids)
            unit_ids = select(Unit.id).where(in_estates)

            n_units = db.session.execute(select(func.count()).select_from(Unit).where(in_estates)).scalar()
            n_ownerships = db.session.execute(
                select(func.count()).select_from(Ownership).where(Ownership.unit_id.in_(unit_ids))
            ).scalar()
            n_residents = db.session.execute(
                select(func.count()).select_from(Resident).where(Resident.unit_id.in_(unit_ids))
            ).scalar()
            owner_ids = select(Ownership.owner_id).where(Ownership.unit_id.in_(unit_ids))
            owners = db.session.execute(select(Owner).where(Owner.id.in_(owner_ids))).scalars().all()

            assert n_units == counts["unit"] == UNITS
            assert n_ownerships == counts["ownership"] == UNITS
            assert n_residents == counts["resident"] == 2 * UNITS
            # About one owner per unit; a few own two.
            assert len(owners) == counts["owner"]
            assert 0.8 * UNITS <= len(owners) <= UNITS

            with_id = [o for o in owners if o.id_number]
            assert len(with_id) >= 0.9 * len(owners)
            for owner in with_id:
                assert check_id_number(owner.id_number) == owner.id_number, owner.id_number
                assert owner.kind == "person"
            assert len({o.id_number for o in with_id}) == len(with_id)
            for owner in owners:
                assert check_phone(owner.phone) == owner.phone, owner.phone

            phones = db.session.execute(select(Resident.phone).where(Resident.unit_id.in_(unit_ids))).scalars().all()
            for phone in phones:
                assert check_phone(phone) == phone, phone

            # Unit codes are unique within every estate (the generated ones and any other).
            clashes = db.session.execute(
                select(Unit.estate_id, Unit.code).group_by(Unit.estate_id, Unit.code).having(func.count() > 1)
            ).all()
            assert clashes == []
            # Every unit is in a building of its own estate.
            wrong = db.session.execute(
                select(func.count())
                .select_from(Unit)
                .join(Building, Building.id == Unit.building_id)
                .where(in_estates, Building.estate_id != Unit.estate_id)
            ).scalar()
            assert wrong == 0
        finally:
            db.session.remove()
