from flask import redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import login_required

from app.consultation import bp, services
from app.extensions import limiter
from app.patients.services import get_appointment
from app.web import current_practice


def _invalid_link():
    # One page and status for unknown, malformed, expired and deleted links alike.
    return render_template("consultation/invalid.html"), 404


@bp.route("/j/<token>")
@limiter.limit("30 per minute")
def join(token):
    appointment = services.appointment_for_token(token)
    if appointment is None:
        return _invalid_link()
    services.redeem(appointment)
    return redirect(url_for("consultation.waiting_room"))


@bp.route("/sprechstunde")
def waiting_room():
    appointment = services.current_patient_appointment()
    if appointment is None:
        return _invalid_link()
    from app.auth.models import Practice
    from app.extensions import db

    practice = db.session.get(Practice, appointment.practice_id)
    return render_template("consultation/waiting.html", appointment=appointment, practice=practice)


@bp.route("/anruf/<int:appointment_id>")
@login_required
def call(appointment_id):
    appointment = get_appointment(current_practice(), appointment_id)
    return render_template("consultation/call.html", appointment=appointment,
                           title=_("Videosprechstunde"))
