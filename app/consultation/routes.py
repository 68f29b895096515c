from flask import redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user
from flask_wtf.csrf import generate_csrf

from app.auth import sessions
from app.auth.models import Practice
from app.consultation import bp, calls, people, protocol, sockets
from app.consultation.forms import ConsentForm
from app.consultation.identity import consent_missing, patient_identity, staff_identity
from app.extensions import db, hub, limiter, sock
from app.hub import HubUnavailable
from app.patients import consent, links
from app.patients.models import Appointment
from app.roles import Role
from app.tariffs import FEATURE_MESSAGES, has_feature
from app.timeutil import to_local, utcnow
from app.web import current_practice, error_page, is_htmx, load_in_practice


def _invalid_link():
    # One page and status for unknown, malformed, expired and deleted links alike.
    return render_template("consultation/invalid.html"), 404


@bp.route("/j/<token>")
@limiter.limit("30 per minute")
def join(token):
    visitor = links.visitor_for_token(token)
    if visitor is None:
        return _invalid_link()
    if current_user.is_authenticated:
        # A staff browser: going on as the patient ends the login, which a GET must not
        # do (any site could link here). Ask, and do it by POST.
        return render_template("consultation/switch.html", token=token)
    links.redeem(visitor)
    return redirect(url_for("consultation.device_check"))


@bp.route("/j/<token>", methods=["POST"])
@limiter.limit("30 per minute")
def join_as_visitor(token):
    """"Als Patient fortfahren / abmelden" in a staff browser."""
    visitor = links.visitor_for_token(token)
    if visitor is None:
        return _invalid_link()
    if current_user.is_authenticated:
        sessions.end(sessions.current_id())
        logout_user()
    links.redeem(visitor)
    return redirect(url_for("consultation.device_check"), 303)


def _call_context(appointment, practice, role, ws_url):
    # What the browser side needs; ICE servers come only with the socket's welcome.
    return dict(appointment=appointment, practice=practice, role=role, ws_url=ws_url,
                csrf=generate_csrf(), screen_sharing=has_feature(practice, "screen_sharing"))


def _visitor_or_refusal():
    """(visitor, None), or (None, the page for a browser that holds no link)."""
    visitor = links.current_visitor()
    if visitor is not None:
        return visitor, None
    if links.taken_over():
        return None, (render_template("consultation/taken_over.html"), 403)
    return None, _invalid_link()


def _patient_page(template, visitor, status=200, **extra):
    # Guests get the patient's pages, with the role "guest" as on their socket.
    appointment = visitor.appointment
    practice = db.session.get(Practice, appointment.practice_id)
    context = _call_context(appointment, practice, visitor.role,
                            url_for("consultation.patient_socket"))
    # "Ihr Termin beginnt um 10:30 Uhr" on the day itself, with the date on any other.
    starts_today = (to_local(appointment.starts_at, practice.timezone).date()
                    == to_local(utcnow(), practice.timezone).date())
    return render_template(template, visitor=visitor, starts_today=starts_today,
                           **context, **extra), status


@bp.route("/sprechstunde/geraetetest")
def device_check():
    """The consent first (no camera or microphone is asked for before it), then the
    device check itself."""
    visitor, refusal = _visitor_or_refusal()
    if refusal:
        return refusal
    if not consent.is_current(visitor.appointment.id, visitor.participant_id):
        return _patient_page("consultation/consent.html", visitor, form=ConsentForm())
    return _patient_page("consultation/device_check.html", visitor)


@bp.route("/sprechstunde/geraetetest", methods=["POST"])
def give_consent():
    """"Einverstanden, weiter zur Technikprüfung"."""
    visitor, refusal = _visitor_or_refusal()
    if refusal:
        return refusal
    form = ConsentForm()
    if not form.validate():
        return _patient_page("consultation/consent.html", visitor, 422, form=form)
    consent.give(visitor)
    return redirect(url_for("consultation.device_check"), 303)


@bp.route("/sprechstunde")
def waiting_room():
    visitor, refusal = _visitor_or_refusal()
    if refusal:
        return refusal
    if not consent.is_current(visitor.appointment.id, visitor.participant_id):
        return redirect(url_for("consultation.device_check"))
    return _patient_page("consultation/waiting.html", visitor)


@bp.route("/sprechstunde/einwilligung-widerrufen")
def consent_withdrawal():
    """After "Einwilligung widerrufen": the page that says so. With a consent still in
    force, the confirmation step as a page of its own."""
    visitor, refusal = _visitor_or_refusal()
    if refusal:
        return refusal
    row = consent.latest(visitor.appointment.id, visitor.participant_id)
    if row is None:
        return redirect(url_for("consultation.device_check"))
    if row.withdrawn_at is None:
        return _patient_page("consultation/consent_withdraw.html", visitor)
    return _patient_page("consultation/consent_withdrawn.html", visitor)


@bp.route("/sprechstunde/einwilligung-widerrufen", methods=["POST"])
def withdraw_consent():
    visitor, refusal = _visitor_or_refusal()
    if refusal:
        return refusal
    consent.withdraw(visitor)
    return redirect(url_for("consultation.consent_withdrawal"), 303)


def _no_calls_for_mfa():
    return error_page(403, _("Mit einem MFA-Konto können Sie keine Videosprechstunde führen: "
                             "Das Gespräch führt eine Ärztin oder ein Arzt."))


def _people_of(appointment, practice):
    """The group call's people for the staff page, None where the tariff has no group
    calls (the page shows no list) or the hub cannot say now (HubUnavailable)."""
    if not has_feature(practice, "participants"):
        return None
    return people.of(appointment, hub.get())


@bp.route("/anruf/<int:appointment_id>")
@login_required
def call(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    if not current_user.conducts_calls:
        return _no_calls_for_mfa()
    try:
        listed = _people_of(appointment, practice)
    except HubUnavailable:
        listed = []  # the list fills in once the page's socket is back
    return render_template("consultation/call.html", title=_("Videosprechstunde"), **_call_context(
        appointment, practice, Role.STAFF,
        url_for("consultation.staff_socket", appointment_id=appointment.id)),
        people=listed)


@bp.route("/anruf/<int:appointment_id>/personen")
@login_required
def call_people(appointment_id):
    """The call page's list of who is in the call and who waits, fetched again whenever
    its socket hears that this may have changed (js/call/main.js)."""
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    if not current_user.conducts_calls:
        return _no_calls_for_mfa()
    if not is_htmx():
        return redirect(url_for("consultation.call", appointment_id=appointment.id))
    try:
        listed = _people_of(appointment, practice)
    except HubUnavailable:
        # 503 is not swapped (base.html's htmx-config): the list on screen stays.
        return error_page(503, _("Wer im Gespräch ist, lässt sich gerade nicht abfragen."))
    if listed is None:
        return error_page(403, FEATURE_MESSAGES["participants"])
    return render_template("consultation/_people.html", appointment=appointment,
                           people=listed), 200, {"Vary": "HX-Request"}


@bp.route("/anruf/<int:appointment_id>/starten", methods=["POST"])
@login_required
def start_call(appointment_id):
    appointment = load_in_practice(Appointment, appointment_id, current_practice())
    if not current_user.conducts_calls:
        return _no_calls_for_mfa()
    calls.ring_now(appointment, current_user.id)
    return redirect(url_for("consultation.call", appointment_id=appointment.id), 303)


@sock.route("/ws/anruf/<int:appointment_id>", bp=bp)
def staff_socket(ws, appointment_id):
    sockets.serve(ws, staff_identity(appointment_id))


@sock.route("/ws/sprechstunde", bp=bp)
def patient_socket(ws):
    identity = patient_identity()
    if identity is None and links.taken_over():
        ws.close(protocol.CLOSE_TAKEN_OVER, "taken over")
        return
    if identity is None and consent_missing():
        # The page goes back to the device check, where the consent is asked for.
        ws.close(protocol.CLOSE_NO_CONSENT, "no consent")
        return
    sockets.serve(ws, identity)
