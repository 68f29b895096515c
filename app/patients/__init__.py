from flask import Blueprint

bp = Blueprint("patients", __name__)

# reminders connects its receiver of app/events.py (the outbox sender's round).
from app.patients import reminders, routes  # noqa: E402,F401
