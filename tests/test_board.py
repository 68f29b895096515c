"""The "Heute" board (issue 11): today's appointments with where each patient is, live
over the practice's board socket; the delay notice; the consultation record.

Real sockets against the live app on both hubs (``make_call``), both databases.
"""
import csv
import io
from datetime import timedelta

import pytest
from websocket import WebSocketException

from app.auth.audit import CONTACT_VIEW, AuditEntry
from app.extensions import db
from app.ops import retention
from app.patients.models import Appointment, Cancellation
from app.timeutil import to_local, utcnow
from tests.support.sockets import Closed
from tests.support.webapp import give_consent, logged_in

BOARD = "/patienten/heute"


def move_to_now(app, appointment_id, minutes=5, today=True):
    """The appointment starts ``minutes`` from now (negative: began that long ago).

    The board shows the practice's day, so ``today`` skips the test when that moment is
    on another day in Berlin (a run a few minutes around midnight): the board would
    rightly not list it, and the test would fail for the clock, not the code.
    """
    start = utcnow() + timedelta(minutes=minutes)
    if today and to_local(start, "Europe/Berlin").date() != to_local(utcnow(), "Europe/Berlin").date():
        pytest.skip("too close to midnight in Berlin for an appointment today")
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        appointment.starts_at = start
        db.session.commit()


def board_html(auth):
    response = auth.get(BOARD)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def line(html, appointment_id):
    start = html.index(f'id="board-appointment-{appointment_id}"')
    return html[start:html.index("</li>", start)]


def todays_call(app, make_call, tariff="premium", **kwargs):
    call = make_call(tariff, **kwargs)
    move_to_now(app, call.id)
    return call


def board_socket(call):
    ws = call.live.connect("/ws/praxis", call.staff_client, label="board")
    assert ws.take("welcome") == {"type": "welcome"}
    return ws


# -- the board's lines --------------------------------------------------------------------

def test_board_lists_today_only_with_invitation_state(app, make_call):
    call = make_call()  # three days ahead: not today
    assert f"board-appointment-{call.id}" not in board_html(call.staff_auth)
    move_to_now(app, call.id)
    html = line(board_html(call.staff_auth), call.id)
    # The patient's link was opened by make_call already.
    assert 'data-status="opened"' in html and "Link geöffnet" in html
    page = call.staff_client.get("/patienten").get_data(as_text=True)
    assert 'id="board"' in page and '/ws/praxis"' in page


def test_invited_line_shows_the_delivery_state(app, auth, make_practice, make_appointment):
    _, email = make_practice()
    auth.login(email)
    today = to_local(utcnow() + timedelta(minutes=3), "Europe/Berlin")
    if today.date() != to_local(utcnow(), "Europe/Berlin").date():
        pytest.skip("too close to midnight in Berlin for an appointment today")
    make_appointment(date=today.strftime("%Y-%m-%d"), time=today.strftime("%H:%M"))
    html = board_html(auth)
    assert 'data-status="invited"' in html
    assert "eingeladen" in html and "E-Mail wird gesendet" in html


def test_waiting_in_call_done_and_the_record(app, make_call):
    call = todays_call(app, make_call)
    board = board_socket(call)
    patient = call.patient()
    assert board.take("board", what="waiting")["appointment_id"] == call.id
    html = line(board_html(call.staff_auth), call.id)
    assert 'data-status="waiting"' in html and "im Wartezimmer seit" in html
    assert 'data-waiting-ids="%d"' % call.id in board_html(call.staff_auth)

    staff = call.staff()
    call.accept(staff, patient)
    board.take("board", what="call")
    assert "im Gespräch seit" in line(board_html(call.staff_auth), call.id)
    staff.send({"type": "hangup"})
    patient.expect("call-state", state="ended")
    board.take("board", what="call")
    html = line(board_html(call.staff_auth), call.id)
    assert 'data-status="done"' in html and "erledigt" in html

    with app.app_context():
        a = db.session.get(Appointment, call.id)
        assert a.call_started_at <= a.call_connected_at <= a.call_ended_at
        assert a.call_live_since is None and a.call_members == "patient"
    panel = call.staff_auth.get(f"/patienten/kontakte/{a.contact_id}").get_data(as_text=True)
    assert "Gesprächsprotokoll" in panel and "record-duration" in panel

    patient.close()
    board.take("board", what="left")
    with app.app_context():
        assert db.session.get(Appointment, call.id).waiting_since is None


def test_late_and_overdue_are_marked(app, make_call):
    call = make_call()
    move_to_now(app, call.id, minutes=-10)  # began ten minutes ago, nobody there
    html = line(board_html(call.staff_auth), call.id)
    assert "board-late" in html and "Patient noch nicht da" in html
    board = board_socket(call)
    call.patient()
    board.take("board", what="waiting")
    html = line(board_html(call.staff_auth), call.id)
    # The patient waits past the start: the practice is behind.
    assert "board-overdue" in html and "Termin überfällig" in html and "board-late" not in html


def test_a_waiting_patient_keeps_the_appointment_out_of_the_past(app, make_call):
    call = make_call()
    move_to_now(app, call.id, minutes=-60, today=False)  # 20 minutes long: over 40 minutes ago
    listing = call.staff_auth.get("/patienten/liste").get_data(as_text=True)
    assert listing.index("Vergangene Termine") < listing.index("Erika Mustermann")
    call.patient()
    listing = call.staff_auth.get("/patienten/liste").get_data(as_text=True)
    assert f'id="appointment-row-{call.id}"' in listing


def test_a_chat_message_of_the_patient_tells_the_board(app, make_call):
    call = todays_call(app, make_call)
    board = board_socket(call)
    token = call.patient_client.get("/sprechstunde").get_data(as_text=True)
    csrf = token.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    response = call.patient_client.post("/sprechstunde/chat/nachrichten", data={"text": "Hallo"},
                                        headers={"X-CSRFToken": csrf, "HX-Request": "true"})
    assert response.status_code == 201
    assert board.take("board", what="chat")["appointment_id"] == call.id
    assert "ungelesene Nachricht" in line(board_html(call.staff_auth), call.id)


# -- who gets the board socket ------------------------------------------------------------

def test_another_practices_board_never_hears_of_it(app, make_call):
    ours, theirs = todays_call(app, make_call), todays_call(app, make_call)
    their_board = board_socket(theirs)
    ours.patient()
    theirs.patient()
    # The first news on their board is about their own appointment, never ours.
    first = their_board.take("board")
    assert first["appointment_id"] == theirs.id
    assert all(m.get("appointment_id") != ours.id for m in their_board.backlog)
    # Their board's fragment does not list ours either.
    assert f"board-appointment-{ours.id}" not in board_html(theirs.staff_auth)


def test_board_socket_needs_a_login_and_our_origin(app, make_call):
    call = make_call()
    with pytest.raises(WebSocketException):  # the login check answers with a redirect
        call.live.connect("/ws/praxis", app.test_client())
    foreign = call.live.connect("/ws/praxis", call.staff_client, origin="https://evil.example")
    assert foreign.closed_with() == 1008


def test_board_socket_closes_after_logout(app, make_call):
    call = make_call()
    app.config["SESSION_CHECK_SECONDS"] = 0.2
    board = board_socket(call)
    call.staff_auth.logout()
    with pytest.raises(Closed) as closed:
        board.take("never")
    assert closed.value.code == 1008


# -- delay notice -------------------------------------------------------------------------

def delay(call, **data):
    prefix = f"d{call.id}-"
    return call.staff_auth.post(f"/patienten/termine/{call.id}/verspaetung",
                                data={prefix + k: v for k, v in data.items()})


def test_delay_pick_and_text_reach_the_waiting_room(app, make_call):
    call = todays_call(app, make_call, guests=1)
    patient, guest = call.patient(), call.guest()
    response = delay(call, action="10")
    assert response.status_code == 200
    assert "Ihr Termin beginnt ca. 10 Min. später." in response.get_data(as_text=True)
    assert patient.expect("delay") == {"type": "delay", "minutes": 10}
    assert guest.expect("delay") == {"type": "delay", "minutes": 10}
    page = call.patient_client.get("/sprechstunde").get_data(as_text=True)
    assert "Ihr Termin beginnt ca. 10 Min. später." in page
    local = to_local(utcnow() + timedelta(minutes=5), "Europe/Berlin")
    if local.date() == to_local(utcnow(), "Europe/Berlin").date():
        assert "Ihr Termin beginnt um" in page

    assert delay(call, action="text", text="Wir rufen nach 11 Uhr an & bitten um Geduld.").status_code == 200
    assert patient.expect("delay") == {"type": "delay", "text": "Wir rufen nach 11 Uhr an & bitten um Geduld."}
    page = call.patient_client.get("/sprechstunde").get_data(as_text=True)
    assert "Wir rufen nach 11 Uhr an &amp; bitten um Geduld." in page

    assert delay(call, action="clear").status_code == 200
    assert patient.expect("delay") == {"type": "delay"}
    with app.app_context():
        a = db.session.get(Appointment, call.id)
        assert (a.delay_minutes, a.delay_notice) == (None, None)


@pytest.mark.parametrize("data, message", [
    ({"action": "text", "text": "x" * 10_000}, "Der Hinweis darf höchstens 200 Zeichen lang sein."),
    ({"action": "text", "text": "x" * 201}, "Der Hinweis darf höchstens 200 Zeichen lang sein."),
    ({"action": "text", "text": "<script>alert(1)</script>"}, "Bitte ohne spitze Klammern"),
    ({"action": "text", "text": "Bitte <b>warten</b>"}, "Bitte ohne spitze Klammern"),
    ({"action": "text", "text": "   "}, "Bitte geben Sie einen Hinweis ein."),
    ({"action": "text", "text": "Gleich\u202edran"}, "unsichtbare Steuerzeichen"),
    ({"action": "7"}, "Bitte wählen Sie eine Verspätung aus."),
    ({}, "Bitte wählen Sie eine Verspätung aus."),
])
def test_bad_delay_input_is_refused_and_changes_nothing(app, make_call, data, message):
    call = make_call()
    assert delay(call, action="15").status_code == 200
    response = delay(call, **data)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body and "<script>alert" not in body
    with app.app_context():
        a = db.session.get(Appointment, call.id)
        assert (a.delay_minutes, a.delay_notice) == (15, None)


def test_delay_of_another_practices_appointment_is_404(app, make_call):
    ours, theirs = make_call(), make_call()
    response = ours.staff_auth.post(f"/patienten/termine/{theirs.id}/verspaetung",
                                    data={f"d{theirs.id}-action": "10"})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(Appointment, theirs.id).delay_minutes is None


def board_delay(call, **data):
    """The pick from the "Heute" board line: the panel's route, asked for the board's form."""
    prefix = f"d{call.id}-"
    return call.staff_auth.post(f"/patienten/termine/{call.id}/verspaetung?ansicht=heute",
                                data={prefix + k: v for k, v in data.items()})


def test_the_board_offers_the_delay_pick_while_the_patient_waits_or_is_to_come(app, make_call):
    call = todays_call(app, make_call)
    html = line(board_html(call.staff_auth), call.id)  # link opened, the appointment to come
    assert f'id="board-appointment-{call.id}-delay"' in html
    assert f'action="/patienten/termine/{call.id}/verspaetung?ansicht=heute"' in html
    assert f'name="d{call.id}-action"' in html and 'name="csrf_token"' in html
    assert 'aria-label="Verspätung mitteilen: Erika Mustermann"' in html
    for n in (5, 10, 15, 30):
        assert f'<option value="{n}">ca. {n} Min. später</option>' in html
    # the form sits beside the line's link, not inside it
    assert html.index("</a>") < html.index("<form")
    assert "Hinweis entfernen" not in html  # nothing to remove yet

    board = board_socket(call)
    patient = call.patient()
    board.take("board", what="waiting")
    assert f'id="board-appointment-{call.id}-delay"' in line(board_html(call.staff_auth), call.id)

    staff = call.staff()
    call.accept(staff, patient)
    board.take("board", what="call")  # in the call: a delay notice says nothing any more
    assert f'id="board-appointment-{call.id}-delay"' not in line(board_html(call.staff_auth), call.id)


def test_a_pick_on_the_board_reaches_the_waiting_patient(app, make_call):
    call = todays_call(app, make_call)
    board = board_socket(call)
    patient = call.patient()
    board.take("board", what="waiting")

    response = board_delay(call, action="15")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    # The board's own form comes back (the panel's route, not its fragment), and the toast.
    assert body.startswith("<form") and f'id="board-appointment-{call.id}-delay"' in body
    assert '<option value="15" selected>' in body and "Hinweis entfernen" in body
    assert f'id="appointment-{call.id}-delay"' not in body
    assert "Der Patient sieht den Hinweis jetzt im Wartezimmer." in body
    assert patient.expect("delay") == {"type": "delay", "minutes": 15}
    assert board.take("board", what="delay")["appointment_id"] == call.id
    with app.app_context():
        a = db.session.get(Appointment, call.id)
        assert (a.delay_minutes, a.delay_notice) == (15, None) and a.delay_notice_at is not None
    assert "Verspätung mitgeteilt" in line(board_html(call.staff_auth), call.id)

    assert board_delay(call, action="clear").status_code == 200
    assert patient.expect("delay") == {"type": "delay"}
    with app.app_context():
        assert db.session.get(Appointment, call.id).delay_minutes is None

    # Without JavaScript the form posts as a page, which shows it too.
    page = call.staff_auth.post(f"/patienten/termine/{call.id}/verspaetung?ansicht=heute",
                                data={f"d{call.id}-action": "5"}, htmx=False)
    assert page.status_code == 200 and 'id="board"' in page.get_data(as_text=True)
    assert patient.expect("delay") == {"type": "delay", "minutes": 5}


def test_a_typed_notice_from_the_board_reaches_the_waiting_patient(app, make_call):
    call = todays_call(app, make_call)
    html = line(board_html(call.staff_auth), call.id)
    assert '<option value="text">Eigener Hinweis …</option>' in html
    assert f'name="d{call.id}-text"' in html
    assert 'aria-label="Eigener Hinweis an den Patienten: Erika Mustermann"' in html
    patient = call.patient()
    response = board_delay(call, action="text", text="Notfall in der Praxis, bitte etwas Geduld")
    assert response.status_code == 200
    assert patient.expect("delay") == {"type": "delay", "text": "Notfall in der Praxis, bitte etwas Geduld"}
    # The line shows what the patient sees: the own notice chosen, with its text.
    body = line(board_html(call.staff_auth), call.id)
    assert '<option value="text" selected>' in body
    assert 'value="Notfall in der Praxis, bitte etwas Geduld"' in body
    # A refused text stays in the box, marked, for the user to mend.
    refused = board_delay(call, action="text", text="x" * 201).get_data(as_text=True)
    assert 'value="' + "x" * 201 + '"' in refused and '<option value="text" selected>' in refused
    assert f'id="board-delay-{call.id}-error"' in refused
    with app.app_context():
        assert db.session.get(Appointment, call.id).delay_notice == "Notfall in der Praxis, bitte etwas Geduld"


@pytest.mark.parametrize("data, message", [
    ({"action": ""}, "Bitte wählen Sie eine Verspätung aus."),
    ({"action": "7"}, "Bitte wählen Sie eine Verspätung aus."),
    ({"action": "text"}, "Bitte geben Sie einen Hinweis ein."),
    ({"action": "text", "text": "<b>gleich</b>"}, "Bitte ohne spitze Klammern"),
])
def test_a_bad_pick_on_the_board_says_why_beside_it_and_changes_nothing(app, make_call, data, message):
    call = todays_call(app, make_call)
    patient = call.patient()
    assert board_delay(call, action="10").status_code == 200
    patient.expect("delay")
    response = board_delay(call, **data)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert f'id="board-appointment-{call.id}-delay"' in body and message in body
    assert 'aria-invalid="true"' in body and "<b>gleich" not in body
    with app.app_context():
        a = db.session.get(Appointment, call.id)
        assert (a.delay_minutes, a.delay_notice) == (10, None)
    patient.send({"type": "ping"})
    assert patient.first_of("delay", "pong")["type"] == "pong"  # no second delay came


def test_a_pick_for_another_practices_board_line_is_404(app, make_call):
    ours, theirs = make_call(), make_call()
    response = ours.staff_auth.post(f"/patienten/termine/{theirs.id}/verspaetung?ansicht=heute",
                                    data={f"d{theirs.id}-action": "10"})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(Appointment, theirs.id).delay_minutes is None


# -- the month's records as CSV -----------------------------------------------------------

def test_month_csv_for_billing(app, make_call):
    call = todays_call(app, make_call)
    staff, patient = call.accepted()
    staff.send({"type": "hangup"})
    patient.expect("call-state", state="ended")
    month = to_local(utcnow() + timedelta(minutes=5), "Europe/Berlin").strftime("%Y-%m")
    response = call.staff_auth.get(f"/patienten/abrechnung.csv?monat={month}", htmx=False)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["Termin-Nr.", "Datum", "Uhrzeit", "Patient", "Begonnen", "Verbunden",
                       "Beendet", "Dauer (Minuten)", "Teilnehmende"]
    assert rows[1][0] == str(call.id) and rows[1][3] == "Erika Mustermann"
    assert rows[1][8] == "Patient" and "," in rows[1][7]
    # Another practice's export has no line of ours.
    other = make_call()
    theirs = other.staff_auth.get(f"/patienten/abrechnung.csv?monat={month}", htmx=False)
    assert len(list(csv.reader(io.StringIO(theirs.get_data(as_text=True)), delimiter=";"))) == 1


@pytest.mark.parametrize("month", ["", "2026", "2026-13", "abc-def", "1999-01"])
def test_month_csv_needs_a_month(app, auth, make_practice, month):
    _, email = make_practice()
    staff = logged_in(app, email)
    response = staff.get(f"/patienten/abrechnung.csv?monat={month}")
    assert response.status_code == 422
    assert "Bitte wählen Sie einen Monat" in response.get_data(as_text=True)


def test_boards_fetching_after_one_change_share_one_render(app, make_call):
    call = todays_call(app, make_call)
    board = board_socket(call)
    call.patient()
    change = board.take("board", what="waiting")["change"]
    first = board_html_after(call.staff_auth, change)
    assert 'data-status="waiting"' in line(first, call.id)
    # Changed meanwhile: a fetch after the same news gets the same render, a plain one
    # (page load, appointments-changed, the minute's refresh) the board as it is now.
    move_to_now(app, call.id, minutes=7)
    assert board_html_after(call.staff_auth, change) == first
    assert board_html(call.staff_auth) != first
    # Another practice naming our change gets its own board, never ours.
    other = todays_call(app, make_call)
    theirs = board_html_after(other.staff_auth, change)
    assert f"board-appointment-{call.id}" not in theirs and f"board-appointment-{other.id}" in theirs


def board_html_after(auth, change):
    response = auth.get(f"{BOARD}?nach={change}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_patients_page_offers_the_month_export(app, make_call):
    call = make_call()
    page = call.staff_client.get("/patienten").get_data(as_text=True)
    assert 'action="/patienten/abrechnung.csv"' in page and 'name="monat" type="month"' in page


# -- the open panel's part that changes on its own -------------------------------------

def test_the_panels_changing_part_comes_alone_unlogged_and_only_to_the_practice(app, make_call):
    call = make_call(consent=False)
    url = f"/patienten/termine/{call.id}/stand"

    def state():
        response = call.staff_client.get(url, headers={"HX-Request": "true"})
        assert response.status_code == 200
        return response.get_data(as_text=True)

    def looks():
        with app.app_context():
            return db.session.scalar(db.select(db.func.count()).select_from(AuditEntry)
                                     .filter_by(action=CONTACT_VIEW))

    before, html = looks(), state()
    assert html.lstrip().startswith(f'<div id="appointment-{call.id}-state"')
    assert f'hx-trigger="appointment-changed-{call.id} from:body"' in html
    assert "noch nicht erteilt" in html and 'class="delivery-state' in html
    # What the patient does shows on the next fetch; fetching is no look at the patient.
    give_consent(call.patient_client)
    assert "erteilt am" in state()
    assert looks() == before
    other = make_call()
    assert other.staff_client.get(url, headers={"HX-Request": "true"}).status_code == 404


# -- "abgesagt" ---------------------------------------------------------------------------

def delete_appointment(call):
    response = call.staff_auth.post(f"/patienten/termine/{call.id}/loeschen")
    assert response.status_code == 200
    return response


def test_a_deleted_appointment_of_today_stays_on_the_board_as_cancelled(app, make_call):
    call = todays_call(app, make_call)
    board = board_socket(call)
    other = todays_call(app, make_call)
    delete_appointment(call)
    assert board.take("board", what="cancelled")["appointment_id"] == call.id
    html = line(board_html(call.staff_auth), call.id)
    assert 'data-status="cancelled"' in html and "abgesagt" in html and "Erika Mustermann" in html
    assert "board-late" not in html and "board-overdue" not in html
    # Only the practice's own board, only today; the link is dead all the same.
    assert f"board-appointment-{call.id}" not in board_html(other.staff_auth)
    assert call.patient_client.get("/sprechstunde").status_code in (403, 404)
    with app.app_context():
        assert db.session.get(Cancellation, call.id).contact_id is not None
        assert db.session.get(Appointment, call.id) is None


def test_what_is_not_cancelled_leaves_nothing_behind(app, make_call):
    # Already over, or held: deleting it is tidying up, not calling it off.
    over = make_call()
    move_to_now(app, over.id, minutes=-60, today=False)
    delete_appointment(over)
    held = todays_call(app, make_call)
    staff, patient = held.both()
    held.accept(staff, patient)
    staff.send({"type": "hangup"})
    staff.take("call-state", state="ended")
    delete_appointment(held)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Cancellation)) == 0
    assert f"board-appointment-{held.id}" not in board_html(held.staff_auth)


def test_a_cancellation_goes_with_the_contact_and_with_retention(app, make_call):
    first, second = todays_call(app, make_call), make_call()
    delete_appointment(first)
    delete_appointment(second)
    with app.app_context():
        contact_id = db.session.get(Cancellation, first.id).contact_id
        starts = db.session.get(Cancellation, second.id).starts_at
    # The person's export (DSGVO Art. 15) names it; erasure (Art. 17) takes it.
    export = first.staff_client.get(f"/patienten/kontakte/{contact_id}/daten.json").get_json()
    assert [c["id"] for c in export["cancelled_appointments"]] == [first.id]
    response = first.staff_auth.post(f"/patienten/kontakte/{contact_id}/loeschen")
    assert response.status_code == 200, response.status_code
    with app.app_context():
        assert db.session.get(Cancellation, first.id) is None
        # Retention as of today keeps it; 91 days after the appointment's time it goes.
        assert retention.purge()["cancellations"] == 0
        assert db.session.get(Cancellation, second.id) is not None
        assert retention.purge(now=starts + timedelta(days=91))["cancellations"] == 1
        assert db.session.get(Cancellation, second.id) is None
