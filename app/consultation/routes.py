from flask import redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import login_required
from flask_wtf.csrf import generate_csrf

from app.auth.models import Practice
from app.consultation import bp, calls, sockets
from app.consultation.identity import patient_identity, staff_identity
from app.extensions import db, limiter, sock
from app.patients import links
from app.patients.models import Appointment
from app.roles import Role
from app.tariffs import has_feature
from app.web import current_practice, load_in_practice


def _invalid_link():
    # One page and status for unknown, malformed, expired and deleted links alike.
    return render_template("consultation/invalid.html"), 404


@bp.route("/j/<token>")
@limiter.limit("30 per minute")
def join(token):
    visitor = links.visitor_for_token(token)
    if visitor is None:
        return _invalid_link()
    links.redeem(visitor.appointment, visitor.participant)
    return redirect(url_for("consultation.device_check"))


def _call_context(appointment, practice, role, ws_url):
    # What the browser side needs; ICE servers come only with the socket's welcome.
    return dict(appointment=appointment, practice=practice, role=role, ws_url=ws_url,
                csrf=generate_csrf(), screen_sharing=has_feature(practice, "screen_sharing"))


def _patient_page(template):
    # Guests get the patient's pages, with the role "guest" as on their socket.
    visitor = links.current_visitor()
    if visitor is None:
        return _invalid_link()
    appointment = visitor.appointment
    practice = db.session.get(Practice, appointment.practice_id)
    context = _call_context(appointment, practice, visitor.role,
                            url_for("consultation.patient_socket"))
    return render_template(template, visitor=visitor, **context)


@bp.route("/sprechstunde/geraetetest")
def device_check():
    return _patient_page("consultation/device_check.html")


@bp.route("/sprechstunde")
def waiting_room():
    return _patient_page("consultation/waiting.html")


@bp.route("/anruf/<int:appointment_id>")
@login_required
def call(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    return render_template("consultation/call.html", title=_("Videosprechstunde"), **_call_context(
        appointment, practice, Role.STAFF,
        url_for("consultation.staff_socket", appointment_id=appointment.id)))


@bp.route("/anruf/<int:appointment_id>/starten", methods=["POST"])
@login_required
def start_call(appointment_id):
    appointment = load_in_practice(Appointment, appointment_id, current_practice())
    calls.ring_now(appointment)
    return redirect(url_for("consultation.call", appointment_id=appointment.id), 303)


@sock.route("/ws/anruf/<int:appointment_id>", bp=bp)
def staff_socket(ws, appointment_id):
    sockets.serve(ws, staff_identity(appointment_id))


@sock.route("/ws/sprechstunde", bp=bp)
def patient_socket(ws):
    sockets.serve(ws, patient_identity())
