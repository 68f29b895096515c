from flask_login import UserMixin

from app.extensions import db
from app.timeutil import utcnow


class Practice(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(200), nullable=False)
    tariff = db.Column(db.String(20), nullable=False, default="basis")
    timezone = db.Column(db.String(64), nullable=False, default="Europe/Berlin")
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    staff = db.relationship("Staff", back_populates="practice", cascade="all, delete-orphan")


class Staff(UserMixin, db.Model):
    id = db.Column(db.Integer, primary_key=True)
    practice_id = db.Column(
        db.Integer, db.ForeignKey("practice.id", ondelete="CASCADE"), nullable=False, index=True
    )
    email = db.Column(db.String(254), nullable=False, unique=True)
    name = db.Column(db.String(200), nullable=False)
    password_hash = db.Column(db.String(200), nullable=False)
    created_at = db.Column(db.DateTime, nullable=False, default=utcnow)

    practice = db.relationship("Practice", back_populates="staff")
