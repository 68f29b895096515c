from flask import redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth.models import Practice
from app.chat import bp, services
from app.chat.forms import ChatForm
from app.chat.models import STAFF
from app.consultation.protocol import guest_key
from app.consultation.services import SESSION_KEY, current_visitor
from app.extensions import db, limiter
from app.patients.services import get_appointment
from app.web import current_practice, error_page, is_htmx, render

# Per appointment and side: a practice's staff share one address.
SEND_LIMIT = "30 per minute"


def _send_key():
    visitor = session.get(SESSION_KEY)
    visitor = visitor if isinstance(visitor, dict) else {}
    if current_user.is_authenticated:
        who = current_user.get_id()
    else:
        # Each guest has its own limit; the patient's stays as it was.
        who = guest_key(visitor["participant_id"]) if visitor.get("participant_id") is not None else "patient"
    appointment_id = request.view_args.get("appointment_id") or visitor.get("id")
    return f"chat:{who}:{appointment_id}"


def _send(appointment, practice, role, staff=None, participant=None):
    form = ChatForm()
    if not form.validate():
        return render("chat/conversation.html", "chat/_form.html", status=422, appointment=appointment,
                      practice=practice, role=role, form=form,
                      messages=services.history(appointment, role, participant))
    services.post_message(appointment, practice, role, form.text.data, staff=staff, participant=participant)
    if role == STAFF and not is_htmx():
        return redirect(url_for("chat.conversation", appointment_id=appointment.id), 303)
    # An empty form; the message itself reaches every page (the sender's too) over the sockets.
    return render("chat/conversation.html", "chat/_form.html", status=201,
                  headers={"HX-Trigger": "chat-sent"}, appointment=appointment, practice=practice,
                  role=role, form=ChatForm(formdata=None))


@bp.route("/chat/<int:appointment_id>")
@login_required
def conversation(appointment_id):
    practice = current_practice()
    appointment = get_appointment(practice, appointment_id)
    return render_template("chat/conversation.html", appointment=appointment, practice=practice, role=STAFF,
                           form=ChatForm(formdata=None), messages=services.history(appointment, STAFF),
                           viewer_key=STAFF)


@bp.route("/chat/<int:appointment_id>/nachrichten")
@login_required
def messages(appointment_id):
    appointment = get_appointment(current_practice(), appointment_id)
    return render_template("chat/_messages.html", messages=services.history(appointment, STAFF),
                           practice=current_practice(), viewer_key=STAFF)


@bp.route("/chat/<int:appointment_id>/nachrichten", methods=["POST"])
@login_required
@limiter.limit(SEND_LIMIT, key_func=_send_key)
def send(appointment_id):
    practice = current_practice()
    appointment = get_appointment(practice, appointment_id)
    return _send(appointment, practice, STAFF, staff=current_user)


# The patient's and the guests' chat: the same URLs, told apart by the session's link.
@bp.route("/sprechstunde/chat/nachrichten")
def patient_messages():
    visitor = current_visitor()
    if visitor is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    practice = db.session.get(Practice, visitor.appointment.practice_id)
    role = services.visitor_role(visitor)
    return render_template("chat/_messages.html", practice=practice, viewer_key=visitor.key,
                           messages=services.history(visitor.appointment, role, visitor.participant))


@bp.route("/sprechstunde/chat/nachrichten", methods=["POST"])
@limiter.limit(SEND_LIMIT, key_func=_send_key)
def patient_send():
    visitor = current_visitor()
    if visitor is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    practice = db.session.get(Practice, visitor.appointment.practice_id)
    # The form's URL is the patient's for guests too (role "patient" in the page).
    return _send(visitor.appointment, practice, services.visitor_role(visitor), participant=visitor.participant)
