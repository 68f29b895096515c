from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth.models import Practice
from app.chat import bp, services
from app.chat.forms import ChatForm
from app.extensions import db, limiter
from app.patients.links import current_visitor
from app.patients.models import Appointment
from app.roles import Role
from app.web import current_practice, error_page, is_htmx, load_in_practice, render

# Per appointment and side: a practice's staff share one address.
SEND_LIMIT = "30 per minute"


@bp.app_template_global("unread_chat")
def unread_chat(appointments):
    """For the Patienten list's badges (patients' templates cannot import chat)."""
    return services.unread_by_staff(appointments)


def _send_key():
    if current_user.is_authenticated:
        return f"chat:{current_user.get_id()}:{request.view_args.get('appointment_id')}"
    # Each guest has its own limit, the patient one; a browser without a link gets 404 anyway.
    visitor = current_visitor()
    if visitor is None:
        return "chat:nobody"
    return f"chat:{visitor.key}:{visitor.appointment.id}"


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


def _history(appointment, reader, participant=None):
    """The history and, when it holds unread messages, where its page says it showed them
    (templates/chat/_message.html: the newest unread one posts ``bis`` on load)."""
    messages = services.history(appointment, reader, participant)
    read_url = (url_for("chat.read", appointment_id=appointment.id) if reader == Role.STAFF
                else url_for("chat.patient_read"))
    return dict(messages=messages, read_upto=services.unread_upto(messages, reader),
                read_url=read_url)


def _upto():
    raw = request.form.get("bis", "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        abort(400)
    return int(raw)


@bp.route("/chat/<int:appointment_id>")
@login_required
def conversation(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    return render_template("chat/conversation.html", appointment=appointment, practice=practice,
                           role=Role.STAFF, form=ChatForm(formdata=None),
                           viewer_key=Role.STAFF, **_history(appointment, Role.STAFF))


@bp.route("/chat/<int:appointment_id>/nachrichten")
@login_required
def messages(appointment_id):
    appointment = load_in_practice(Appointment, appointment_id, current_practice())
    return render_template("chat/_messages.html", practice=current_practice(),
                           viewer_key=Role.STAFF, **_history(appointment, Role.STAFF))


@bp.route("/chat/<int:appointment_id>/gelesen", methods=["POST"])
@login_required
def read(appointment_id):
    appointment = load_in_practice(Appointment, appointment_id, current_practice())
    services.mark_read(appointment, Role.STAFF, _upto())
    return "", 204


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
                           **_history(visitor.appointment, visitor.role, visitor.participant))


@bp.route("/sprechstunde/chat/gelesen", methods=["POST"])
def patient_read():
    visitor = current_visitor()
    if visitor is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    services.mark_read(visitor.appointment, visitor.role, _upto())
    return "", 204


@bp.route("/sprechstunde/chat/nachrichten", methods=["POST"])
@limiter.limit(SEND_LIMIT, key_func=_send_key)
def patient_send():
    visitor = current_visitor()
    if visitor is None:
        return error_page(404, _("Dieser Link ist nicht (mehr) gültig."))
    practice = db.session.get(Practice, visitor.appointment.practice_id)
    # The form's URL is the patient's for guests too (role "patient" in the page).
    return _send(visitor.appointment, practice, visitor.role, participant=visitor.participant)
