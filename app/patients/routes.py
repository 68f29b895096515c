import json

from flask import abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import invitations
from app.auth import audit, sessions
from app.extensions import db, sock
from app.invitations.models import FAILED, PENDING, SENT
from app.patients import (
    board,
    bp,
    delay,
    editing,
    erasure,
    guest_roles,
    live,
    record,
    services,
    submissions,
)
from app.patients import consent as visitor_consent
from app.patients import participants as participant_services
from app.patients.forms import CONSENT_TEXT, AppointmentForm, ParticipantForm
from app.patients.models import Appointment, Contact, Participant
from app.tariffs import has_feature, require_feature, tariff_of
from app.web import (
    current_practice,
    is_htmx,
    load_in_practice,
    render,
    same_origin_socket,
    toast,
)

# Audit entries (app/auth/audit.py) are added before the service call that commits the
# change: both are kept, or neither.

# About two minutes of polling; after that the panel still shows the state.
MAX_DELIVERY_POLLS = 120


# Each "Erneut senden" button carries its own one-time key (app/patients/submissions.py).
bp.add_app_template_global(submissions.new_submit_key, "new_submit_key")
# The panel shows the patient's and the guests' own consent (given, withdrawn).
bp.add_app_template_global(visitor_consent.states, "consents_of")
# A further person's role in the call, in the reader's language.
bp.add_app_template_global(guest_roles.label, "guest_role")
bp.add_app_template_global(guest_roles.GUEST_ROLES, "guest_roles")


@bp.before_request
@login_required
def _require_login():
    pass


@bp.route("/")
def root():
    return redirect(url_for("patients.index"))


@bp.route("/patienten")
def index():
    practice = current_practice()
    upcoming, past = services.appointment_lists(practice)
    return render("patients/index.html", "patients/_list.html", upcoming=upcoming, past=past,
                  board_lines=board.lines(practice))


def _form_context(form, practice, **extra):
    available, reason = invitations.sms_available(practice)
    return dict(form=form, sms_available=available, sms_reason=reason, **extra)


@bp.route("/patienten/termin-erstellen")
def new_appointment():
    practice = current_practice()
    form = AppointmentForm(formdata=None, practice_tz=practice.timezone)
    return render("patients/index.html", "patients/_form.html", **_form_context(form, practice),
                  **_lists_for_page(practice))


def _lists_for_page(practice):
    # The full page shows the list beside the panel; an HTMX request needs only the panel.
    if is_htmx():
        return {}
    upcoming, past = services.appointment_lists(practice)
    return {"upcoming": upcoming, "past": past, "board_lines": board.lines(practice)}


@bp.route("/patienten/termine", methods=["POST"])
def create_appointment():
    practice = current_practice()
    form = AppointmentForm(practice_tz=practice.timezone)
    key = submissions.key_of(form.submit_key.data)
    done = submissions.earlier(practice, key, "appointment")
    if done is not None:
        # A repeat of an Einladen that went through (its answer was lost): the same answer.
        return _created(practice, done.appointment)
    valid = form.validate()
    status = 422
    if form.send_sms.data:
        available, reason = invitations.sms_available(practice)
        if not available:
            form.send_sms.errors = list(form.send_sms.errors) + [reason]
            valid = False
            # The tariff refuses it: not a typo the user can fix in the field.
            status = 403 if not has_feature(practice, "sms") else 422
    if valid and editing.refuse_double_booking(practice, form):
        # The overlap may be this very form's twin, sent at the same time and saved
        # since the first look: then it is a repeat, not a double booking.
        done = submissions.earlier(practice, key, "appointment")
        if done is not None:
            return _created(practice, done.appointment)
        valid, status = False, 409
    if not valid:
        return render("patients/index.html", "patients/_form.html", status=status,
                      **_form_context(form, practice), **_lists_for_page(practice))
    appointment = services.create_appointment(practice, current_user, form, str(CONSENT_TEXT),
                                              submit_key=key)
    return _created(practice, appointment)


def _created(practice, appointment):
    return render("patients/index.html", "patients/_created.html", status=201,
                  headers={"HX-Trigger": "appointments-changed"},
                  appointment=appointment, watch=invitations.delivery_states(appointment),
                  **_lists_for_page(practice))


@bp.route("/patienten/liste")
def patient_list():
    upcoming, past = services.appointment_lists(current_practice())
    return render("patients/index.html", "patients/_list.html", upcoming=upcoming, past=past)


@bp.route("/patienten/heute")
def today():
    """The "Heute" board; its page fetches it again when the board socket says so."""
    practice = current_practice()
    if is_htmx():
        def fresh():
            return render_template("patients/_board.html", board_lines=board.lines(practice))
        html = board.shared_render(practice.id, str(get_locale()), request.args.get("nach"), fresh)
        return html, 200, {"Vary": "HX-Request"}
    return render("patients/index.html", "patients/_board.html", **_lists_for_page(practice))


@sock.route("/ws/praxis", bp=bp)
def board_socket(ws):
    # The blueprint's login check ran before the handshake; a foreign page must not ride
    # on the cookie.
    if not same_origin_socket() or not current_user.is_authenticated:
        ws.close(live.CLOSE_POLICY, "not allowed")
        return
    live.serve(ws, current_user.practice_id, current_user.id, sessions.current_id())


@bp.route("/patienten/suche")
def search():
    contacts = services.search_contacts(current_practice(), request.args.get("q", ""))
    return render("patients/index.html", "patients/_search_results.html", contacts=contacts,
                  q=request.args.get("q", ""))


@bp.route("/patienten/kontakte/<int:contact_id>")
def panel(contact_id):
    practice = current_practice()
    contact = load_in_practice(Contact, contact_id, practice)
    if request.method == "GET":  # not the panel a change answers with: that change is logged
        audit.by_staff(current_user, audit.CONTACT_VIEW, "contact", contact.id)
        db.session.commit()  # the one write a GET makes (tests/test_no_get_changes_state.py)
    upcoming, past = services.contact_appointments(practice, contact)
    return render("patients/index.html", "patients/_panel.html", contact=contact,
                  appointments=upcoming, past_appointments=past,
                  delay_form_for=_delay_form, record_of=record.record_of,
                  **_participants_context(practice), **_lists_for_page(practice))


# -- delay notice and consultation record (issue 11) -----------------------------------

@bp.route("/patienten/termine/<int:appointment_id>/stand")
def appointment_state(appointment_id):
    """The part of the panel that changes on its own (record, consent, delivery), fetched
    when the board socket names this appointment. No audit entry: the panel's opening
    was the look at the patient's data; this keeps what is on screen true."""
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    return render("patients/index.html", "patients/_appointment_state.html", a=appointment,
                  record_of=record.record_of, invitations_of=invitations.delivery_states,
                  **_lists_for_page(practice))


def _delay_form(appointment):
    return delay.DelayForm(formdata=None, prefix=f"d{appointment.id}")


@bp.route("/patienten/termine/<int:appointment_id>/verspaetung", methods=["POST"])
def set_delay(appointment_id):
    """From the panel (_delay.html) or a "Heute" board line (?ansicht=heute,
    _board_delay.html): one service, each place gets its own form back."""
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    form = delay.DelayForm(prefix=f"d{appointment.id}")
    from_board = request.args.get("ansicht") == "heute"
    fragment = "patients/_board_delay.html" if from_board else "patients/_delay.html"
    if not form.validate():
        return render("patients/index.html", fragment, status=422, a=appointment, delay_form=form,
                      errors=[*form.action.errors, *form.text.errors], **_lists_for_page(practice))
    delay.set_delay(appointment, form)
    toast(_("Der Hinweis wurde entfernt.") if form.action.data == "clear"
          else _("Der Patient sieht den Hinweis jetzt im Wartezimmer."), "success")
    return render("patients/index.html", fragment, a=appointment, errors=None,
                  delay_form=_delay_form(appointment), **_lists_for_page(practice))


@bp.route("/patienten/abrechnung.csv")
def record_export():
    """The month's consultation records for billing (patients/record.py says who may)."""
    practice = current_practice()
    try:
        year, month = (int(part) for part in request.args.get("monat", "").split("-"))
        if not (2000 <= year <= 2100 and 1 <= month <= 12):
            raise ValueError
    except ValueError:
        return render("patients/index.html", "_message.html", status=422, level="error",
                      message=_("Bitte wählen Sie einen Monat, z. B. 2026-11."))
    body = record.month_csv(practice, year, month)
    return body, 200, {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="videosprechstunden-{year}-{month:02d}.csv"',
    }


# -- further participants (Premium) ---------------------------------------------------

def _participant_form(appointment):
    # One form per appointment in the panel: the prefix keeps ids and names apart.
    return ParticipantForm(formdata=None, prefix=f"a{appointment.id}")


def _participants_context(practice):
    available, reason = invitations.sms_available(practice)
    return dict(participants_enabled=has_feature(practice, "participants"),
                participant_form_for=_participant_form,
                participant_seats=tariff_of(practice).extra_participants,
                sms_available=available, sms_reason=reason,
                invitations_of=invitations.delivery_states)


def _participants_section(practice, appointment, form=None, status=200, form_error=None):
    return render("patients/index.html", "patients/_participants.html", status=status,
                  a=appointment, participant_form=form or _participant_form(appointment),
                  form_error=form_error,
                  **_participants_context(practice), **_lists_for_page(practice))


@bp.route("/patienten/termine/<int:appointment_id>/teilnehmer", methods=["POST"])
def add_participant(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    require_feature(practice, "participants")
    form = ParticipantForm(prefix=f"a{appointment.id}")  # the panel's prefix, see _participant_form
    key = submissions.key_of(form.submit_key.data)
    if submissions.earlier(practice, key, "participant") is not None:
        return _participant_added(practice, appointment)
    valid = form.validate()
    if form.send_sms.data:
        # Premium includes SMS: only a server without Vonage keys refuses it.
        available, reason = invitations.sms_available(practice)
        if not available:
            form.send_sms.errors = list(form.send_sms.errors) + [reason]
            valid = False
    if not valid:
        return _participants_section(practice, appointment, form, 422)
    try:
        participant_services.add_participant(practice, current_user, appointment, form,
                                             str(CONSENT_TEXT), submit_key=key)
    except participant_services.NoSeatLeft:
        tariff = tariff_of(practice)
        message = _("Es können höchstens %(n)d Personen an einem Anruf teilnehmen: Sie, der "
                    "Patient und %(extra)d weitere. Entfernen Sie zuerst einen Teilnehmer.",
                    n=tariff.max_participants, extra=tariff.extra_participants)
        return _participants_section(practice, appointment, form, 409, form_error=message)
    return _participant_added(practice, appointment)


def _participant_added(practice, appointment):
    toast(_("Der Teilnehmer wurde hinzugefügt und eingeladen."), "success")
    return _participants_section(practice, appointment, status=201)


PARTICIPANT_URL = "/patienten/termine/<int:appointment_id>/teilnehmer/<int:participant_id>"


@bp.route(PARTICIPANT_URL, methods=["DELETE"])
@bp.route(PARTICIPANT_URL + "/entfernen", methods=["POST"])
def remove_participant(appointment_id, participant_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    participant = load_in_practice(Participant, participant_id, practice,
                                   appointment_id=appointment.id)
    audit.by_staff(current_user, audit.PARTICIPANT_REMOVE, "participant", participant.id)
    participant_services.remove_participant(participant)
    toast(_("Der Teilnehmer wurde entfernt. Sein Link ist ungültig und er wird informiert."),
          "info")
    return _participants_section(practice, appointment)


@bp.route("/patienten/termine/<int:appointment_id>/teilnehmer/<int:participant_id>/erneut-senden/<channel>",
          methods=["POST"])
def resend_participant(appointment_id, participant_id, channel):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    participant = load_in_practice(Participant, participant_id, practice,
                                   appointment_id=appointment.id)
    refused = _resend_refused(practice, channel, participant.mobile)
    if refused:
        return refused
    audit.by_staff(current_user, audit.INVITATION_RESEND, "participant", participant.id)
    # A new link is a new invitation: after a downgrade the call would not let them in.
    require_feature(practice, "participants")
    services.resend(practice, appointment, channel, _submit_key(), participant=participant)
    toast(_("Die Einladung wird erneut gesendet. Der bisherige Link ist damit ungültig."), "info")
    return _participants_section(practice, appointment)


def _submit_key():
    return submissions.key_of(request.form.get("submit_key"))


def _resend_refused(practice, channel, mobile):
    """The error answer for a channel this resend cannot use, or None."""
    if channel not in ("email", "sms"):
        return render("patients/index.html", "_message.html", status=404,
                      message=_("Unbekannter Versandweg."), level="error")
    if channel == "sms":
        available, reason = invitations.sms_available(practice)
        if not available or not mobile:
            status = 403 if not has_feature(practice, "sms") else 422
            message = reason or _("Für die SMS-Einladung wird eine Mobilnummer benötigt.")
            return render("patients/index.html", "_message.html", status=status, message=message,
                          level="error")
    return None


@bp.route("/patienten/termine/<int:appointment_id>/zustellung")
def delivery(appointment_id):
    """Polled after Einladen: toasts once each invitation is sent or has failed."""
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    watch = invitations.delivery_states(appointment)
    polls = request.args.get("n", default=0, type=int)
    if any(m.status == PENDING and not m.last_error for m in watch) and polls < MAX_DELIVERY_POLLS:
        return render("patients/index.html", "patients/_delivery_watch.html",
                      appointment=appointment, watch=watch, n=polls)
    for message in watch:
        label = _("Einladungs-E-Mail") if message.channel == "email" else _("Einladungs-SMS")
        if message.status == SENT:
            toast(_("%(what)s wurde versendet.", what=label), "success")
        elif message.status == FAILED:
            toast(_("%(what)s konnte nicht zugestellt werden. Bitte prüfen Sie die Adresse "
                    "bzw. Nummer.", what=label), "error")
        else:
            toast(_("%(what)s konnte noch nicht zugestellt werden; es wird automatisch erneut "
                    "versucht.", what=label), "warning")
    # 286 tells htmx to stop polling.
    return render("patients/index.html", "patients/_delivery_done.html", status=286,
                  headers={"HX-Trigger": "deliveries-changed"}, appointment=appointment,
                  watch=watch)


@bp.route("/patienten/termine/<int:appointment_id>/erneut-senden/<channel>", methods=["POST"])
def resend(appointment_id, channel):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    refused = _resend_refused(practice, channel, appointment.contact.mobile)
    if refused:
        return refused
    audit.by_staff(current_user, audit.INVITATION_RESEND, "appointment", appointment.id)
    services.resend(practice, appointment, channel, _submit_key())
    toast(_("Die Einladung wird erneut gesendet. Der bisherige Link ist damit ungültig."), "info")
    return panel(appointment.contact_id)


EDIT_URL = "/patienten/termine/<int:appointment_id>/bearbeiten"


def _edit_form_page(practice, appointment, form, status=200):
    return render("patients/index.html", "patients/_edit_form.html", status=status,
                  a=appointment, form=form, **_lists_for_page(practice))


@bp.route(EDIT_URL)
def edit_appointment_form(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    return _edit_form_page(practice, appointment, editing.edit_form(appointment, practice))


@bp.route(EDIT_URL, methods=["POST"])
def edit_appointment(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    form = editing.edit_form(appointment, practice, formdata=request.form)
    if not form.validate():
        return _edit_form_page(practice, appointment, form, 422)
    if editing.refuse_double_booking(practice, form, exclude_id=appointment.id):
        return _edit_form_page(practice, appointment, form, 409)
    audit.by_staff(current_user, audit.APPOINTMENT_UPDATE, "appointment", appointment.id)
    if editing.edit_appointment(practice, appointment, form):
        toast(_("Der Termin wurde geändert. Der Teilnehmer wird informiert; sein Link bleibt "
                "gültig."), "success")
    else:
        toast(_("Es wurde nichts geändert."), "info")
    body, status, headers = panel(appointment.contact_id)
    # The contact may be another one now (a new e-mail address): the whole panel changes.
    headers.update({"HX-Trigger": "appointments-changed", "HX-Retarget": "#panel",
                    "HX-Reswap": "innerHTML"})
    return body, status, headers


@bp.route("/patienten/termine/<int:appointment_id>/loeschen")
def confirm_delete(appointment_id):
    appointment = load_in_practice(Appointment, appointment_id, current_practice())
    return render("patients/index.html", "patients/_confirm_delete.html", appointment=appointment,
                  **_lists_for_page(current_practice()))


@bp.route("/patienten/termine/<int:appointment_id>", methods=["DELETE"])
@bp.route("/patienten/termine/<int:appointment_id>/loeschen", methods=["POST"])
def delete_appointment(appointment_id):
    practice = current_practice()
    appointment = load_in_practice(Appointment, appointment_id, practice)
    contact_id = appointment.contact_id
    audit.by_staff(current_user, audit.APPOINTMENT_DELETE, "appointment", appointment.id)
    services.delete_appointment(appointment)
    toast(_("Der Termin wurde gelöscht. Der Link ist ungültig und der Teilnehmer wird "
            "informiert."), "info")
    response = panel(contact_id)
    body, status, headers = response
    headers["HX-Trigger"] = "appointments-changed"
    return body, status, headers


# -- a person's data (DSGVO Art. 15, 17, 20) ---------------------------------------------

def _contact_for_data_rights(contact_id):
    """The contact, for an account that conducts consultations (Praxisadmin, Arzt): an
    MFA organises, it does not hand out or erase a patient's data."""
    practice = current_practice()
    contact = load_in_practice(Contact, contact_id, practice)
    if not current_user.conducts_calls:
        abort(403)
    return practice, contact


@bp.route("/patienten/kontakte/<int:contact_id>/daten.json")
def export_contact(contact_id):
    practice, contact = _contact_for_data_rights(contact_id)
    audit.by_staff(current_user, audit.CONTACT_EXPORT, "contact", contact.id)
    data = erasure.export(practice, contact)
    db.session.commit()
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return body, 200, {"Content-Type": "application/json; charset=utf-8",
                       "Cache-Control": "no-store",
                       "Content-Disposition": f'attachment; filename="kontakt-{contact.id}.json"'}


@bp.route("/patienten/kontakte/<int:contact_id>/loeschen")
def confirm_erase(contact_id):
    contact = _contact_for_data_rights(contact_id)[1]
    return render("patients/index.html", "patients/_confirm_erase.html", contact=contact,
                  **_lists_for_page(current_practice()))


@bp.route("/patienten/kontakte/<int:contact_id>/loeschen", methods=["POST"])
def erase_contact(contact_id):
    contact = _contact_for_data_rights(contact_id)[1]
    audit.by_staff(current_user, audit.CONTACT_ERASE, "contact", contact.id)  # commits with it
    erasure.erase(contact)
    toast(_("Der Kontakt und alle seine Daten wurden gelöscht."), "info")
    if not is_htmx():
        return redirect(url_for("patients.index"))
    return "", 200, {"HX-Trigger": "appointments-changed"}
