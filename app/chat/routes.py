from flask import redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth.models import Practice
from app.chat import bp, services
from app.chat.forms import ChatForm
from app.chat.models import PATIENT, STAFF
from app.consultation.services import SESSION_KEY, current_patient_appointment
from app.extensions import db, limiter
from app.patients.services import get_appointment
from app.web import current_practice, error_page, is_htmx, render

# Per appointment and side: a practice's staff share one address.
SEND_LIMIT = "30 per minute"


def _send_key():
    who = current_user.get_id() if current_user.is_authenticated else "patient"
    patient = session.get(SESSION_KEY)
    appointment_id = request.view_args.get("appointment_id") or (patient.get("id") if isinstance(patient, dict) else None)
    return f"chat:{who}:{appointment_id}"


def _send(appointment, practice, role, staff=None):
    form = ChatForm()
    if not form.validate():
        return render("chat/conversation.html", "chat/_form.html", status=422, appointment=appointment,
                      practice=practice, role=role, form=form, messages=services.history(appointment, role))
    services.post_message(appointment, practice, role, form.text.data, staff=staff)
    if role == STAFF and not is_htmx():
        return redirect(url_for("chat.conversation", appointment_id=appointment.id), 303)
    # An empty form; the message itself reaches both pages over their sockets.
    return render("chat/conversation.html", "chat/_form.html", status=201,
                  headers={"HX-Trigger": "chat-sent"}, appointment=appointment, practice=practice,
                  role=role, form=ChatForm(formdata=None))


@bp.route("/chat/<int:appointment_id>")
@login_required
def conversation(appointment_id):
    practice = current_practice()
    appointment = get_appointment(practice, appointment_id)
    return render_template("chat/conversation.html", appointment=appointment, practice=practice, role=STAFF,
                           form=ChatForm(formdata=None), messages=services.history(appointment, STAFF))


@bp.route("/chat/<int:appointment_id>/nachrichten")
@login_required
def messages(appointment_id):
    appointment = get_appointment(current_practice(), appointment_id)
    return render_template("chat/_messages.html", messages=services.history(appointment, STAFF),
                           practice=current_practice())


@bp.route("/chat/<int:appointment_id>/nachrichten", methods=["POST"])
@login_required
@limiter.limit(SEND_LIMIT, key_func=_send_key)
def send(appointment_id):
    practice = current_practice()
    appointment = get_appointment(practice, appointment_id)
    return _send(appointment, practice, STAFF, staff=current_user)


@bp.route("/sprechstunde/chat/nachrichten")
def patient_messages():
    appointment = current_patient_appointment()
    if appointment is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    practice = db.session.get(Practice, appointment.practice_id)
    return render_template("chat/_messages.html", messages=services.history(appointment, PATIENT),
                           practice=practice)


@bp.route("/sprechstunde/chat/nachrichten", methods=["POST"])
@limiter.limit(SEND_LIMIT, key_func=_send_key)
def patient_send():
    appointment = current_patient_appointment()
    if appointment is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    practice = db.session.get(Practice, appointment.practice_id)
    return _send(appointment, practice, PATIENT)
