from flask import redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app import invitations
from app.invitations.models import FAILED, PENDING, SENT
from app.patients import bp, services, submissions
from app.patients import participants as participant_services
from app.patients.forms import CONSENT_TEXT, AppointmentForm, ParticipantForm
from app.patients.models import Appointment, Contact, Participant
from app.tariffs import has_feature, require_feature, tariff_of
from app.web import current_practice, is_htmx, load_in_practice, render, toast

# About two minutes of polling; after that the panel still shows the state.
MAX_DELIVERY_POLLS = 120


# Each "Erneut senden" button carries its own one-time key (app/patients/submissions.py).
bp.add_app_template_global(submissions.new_submit_key, "new_submit_key")


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
    return render("patients/index.html", "patients/_list.html", upcoming=upcoming, past=past)


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
    return {"upcoming": upcoming, "past": past}


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


@bp.route("/patienten/suche")
def search():
    contacts = services.search_contacts(current_practice(), request.args.get("q", ""))
    return render("patients/index.html", "patients/_search_results.html", contacts=contacts,
                  q=request.args.get("q", ""))


@bp.route("/patienten/kontakte/<int:contact_id>")
def panel(contact_id):
    practice = current_practice()
    contact = load_in_practice(Contact, contact_id, practice)
    upcoming, past = services.contact_appointments(practice, contact)
    return render("patients/index.html", "patients/_panel.html", contact=contact,
                  appointments=upcoming, past_appointments=past,
                  **_participants_context(practice), **_lists_for_page(practice))


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
    services.resend(practice, appointment, channel, _submit_key())
    toast(_("Die Einladung wird erneut gesendet. Der bisherige Link ist damit ungültig."), "info")
    return panel(appointment.contact_id)


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
    services.delete_appointment(appointment)
    toast(_("Der Termin wurde gelöscht. Der Link ist ungültig und der Teilnehmer wird "
            "informiert."), "info")
    response = panel(contact_id)
    body, status, headers = response
    headers["HX-Trigger"] = "appointments-changed"
    return body, status, headers
