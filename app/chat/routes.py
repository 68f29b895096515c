from flask import redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth.models import Practice
from app.chat import bp, services
from app.chat.forms import ChatForm
from app.extensions import db, limiter
from app.patients.links import SESSION_KEY, current_visitor
from app.patients.models import Appointment
from app.roles import Role, guest_key
from app.web import current_practice, error_page, is_htmx, load_in_practice, render

# Per appointment and side: a practice's staff share one address.
SEND_LIMIT = "30 per minute"


@bp.app_template_global("unread_chat")
def unread_chat(appointments):
    """For the Patienten list's badges (patients' templates cannot import chat)."""
    return services.unread_by_staff(appointments)


def _send_key():
    visitor = session.get(SESSION_KEY)
    visitor = visitor if isinstance(visitor, dict) else {}
    if current_user.is_authenticated:
        who = current_user.get_id()
    else:
        # Each guest has its own limit; the patient's stays as it was.
        who = (guest_key(visitor["participant_id"]) if visitor.get("participant_id") is not None
               else Role.PATIENT)
    appointment_id = request.view_args.get("appointment_id") or visitor.get("id")
    return f"chat:{who}:{appointment_id}"


def _send(appointment, practice, role, staff=None, participant=None):
    form = ChatForm()
    if not form.validate():
        return render("chat/conversation.html", "chat/_form.html", status=422,
                      appointment=appointment, practice=practice, role=role, form=form,
                      messages=services.history(appointment, role, participant))
    services.post_message(appointment, practice, role, form.text.data, staff=staff,
                          participant=participant)
    if role == Role.STAFF and not is_htmx():
        return redirect(url_for("chat.conversation", appointment_id=appointment.id), 303)
    # An empty form; the message itself reaches every page (the sender's too) over the sockets.
    return render("chat/conversation.html", "chat/_form.html", status=201,
                  headers={"HX-Trigger": "chat-sent"}, appointment=appointment, practice=practice,
                  role=role, form=ChatForm(formdata=None))


@bp.route("/chat/<int:appointment_id>")
@login_required
def conversation(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    return render_template("chat/conversation.html", appointment=appointment, practice=practice,
                           role=Role.STAFF, form=ChatForm(formdata=None),
                           messages=services.history(appointment, Role.STAFF),
                           viewer_key=Role.STAFF)


@bp.route("/chat/<int:appointment_id>/nachrichten")
@login_required
def messages(appointment_id):
    appointment = load_in_practice(Appointment, appointment_id, current_practice())
    return render_template("chat/_messages.html",
                           messages=services.history(appointment, Role.STAFF),
                           practice=current_practice(), viewer_key=Role.STAFF)


@bp.route("/chat/<int:appointment_id>/nachrichten", methods=["POST"])
@login_required
@limiter.limit(SEND_LIMIT, key_func=_send_key)
def send(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    return _send(appointment, practice, Role.STAFF, staff=current_user)


# The patient's and the guests' chat: the same URLs, told apart by the session's link.
@bp.route("/sprechstunde/chat/nachrichten")
def patient_messages():
    visitor = current_visitor()
    if visitor is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    practice = db.session.get(Practice, visitor.appointment.practice_id)
    return render_template("chat/_messages.html", practice=practice, viewer_key=visitor.key,
                           messages=services.history(visitor.appointment, visitor.role,
                                                     visitor.participant))


@bp.route("/sprechstunde/chat/nachrichten", methods=["POST"])
@limiter.limit(SEND_LIMIT, key_func=_send_key)
def patient_send():
    visitor = current_visitor()
    if visitor is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    practice = db.session.get(Practice, visitor.appointment.practice_id)
    # The form's URL is the patient's for guests too (role "patient" in the page).
    return _send(visitor.appointment, practice, visitor.role, participant=visitor.participant)
