"""Chat: stored with the appointment, sent over HTTP, live on both sockets, unread marks."""
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import inspect

from app.chat.models import ChatMessage
from app.extensions import db
from tests.support.webapp import csrf_token


def post(client_or_auth, path, text):
    """A chat send as HTMX does it: the CSRF token from the page in the header."""
    client = getattr(client_or_auth, "client", client_or_auth)
    token = csrf_token(client, "/sprechstunde" if path.startswith("/sprechstunde") else path.rsplit("/", 1)[0])
    return client.post(path, data={"text": text}, headers={"X-CSRFToken": token, "HX-Request": "true"})


def stored(app, appointment_id):
    """The appointment's messages as rows, their text opened with the app's SECRET_KEY
    (it is encrypted at rest: test_the_text_is_encrypted_at_rest)."""
    with app.app_context():
        messages = db.session.execute(
            db.select(ChatMessage).filter_by(appointment_id=appointment_id).order_by(ChatMessage.id)
        ).scalars().all()
        return [SimpleNamespace(**{c.key: getattr(m, c.key) for c in inspect(ChatMessage).column_attrs},
                                text=m.text, sender_key=m.sender_key) for m in messages]


def test_a_message_is_stored_and_arrives_live_on_both_sockets(app, make_call):
    call = make_call()
    staff, patient = call.both()
    response = post(call.patient_client, "/sprechstunde/chat/nachrichten", "Guten Tag, ich bin <b>bereit</b> & wach")
    assert response.status_code == 201
    assert 'name="text"' in response.get_data(as_text=True)
    assert "bereit" not in response.get_data(as_text=True)  # the form comes back empty
    (message,) = stored(app, call.id)
    assert (message.sender, message.staff_id) == ("patient", None)
    for ws in (staff, patient):
        live_message = ws.expect("chat")
        assert live_message["id"] == message.id and live_message["sender"] == "patient"
        assert f'id="chat-message-{message.id}"' in live_message["html"]
        assert "&lt;b&gt;bereit&lt;/b&gt; &amp; wach" in live_message["html"]
        assert "<b>" not in live_message["html"]

    response = post(call.staff_auth, f"/chat/{call.id}/nachrichten", "Wir rufen gleich an.")
    assert response.status_code == 201
    assert response.headers["HX-Trigger"] == "chat-sent"
    assert patient.expect("chat")["sender"] == "staff"
    assert staff.expect("chat")["sender"] == "staff"
    staff_message = stored(app, call.id)[-1]
    assert staff_message.staff_id is not None


def test_the_text_is_encrypted_at_rest(app, make_call):
    """A copy of the database shows no patient's words (issue 12); the pages read them."""
    call = make_call()
    words = "Mein Blutdruck war heute 150 zu 95"
    assert post(call.patient_client, "/sprechstunde/chat/nachrichten", words).status_code == 201
    with app.app_context():
        raw = db.session.execute(db.text("SELECT text FROM chat_message")).scalar_one()
        assert words not in raw and "Blutdruck" not in raw
        (message,) = stored(app, call.id)
        assert message.text == words
        # Another SECRET_KEY cannot read it: the message says so instead of failing.
        app.config["SECRET_KEY"], key = "another-key", app.config["SECRET_KEY"]
        try:
            assert db.session.get(ChatMessage, message.id).text == "[Nachricht nicht lesbar]"
        finally:
            app.config["SECRET_KEY"] = key
    history = call.staff_auth.get(f"/chat/{call.id}/nachrichten")
    assert words in history.get_data(as_text=True)


def test_history_fragment_on_both_sides(app, make_call):
    call = make_call()
    empty = call.patient_client.get("/sprechstunde/chat/nachrichten").get_data(as_text=True)
    assert 'id="chat-empty"' in empty
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Erste")
    post(call.staff_auth, f"/chat/{call.id}/nachrichten", "Zweite")
    for client, path in ((call.patient_client, "/sprechstunde/chat/nachrichten"),
                         (call.staff_client, f"/chat/{call.id}/nachrichten")):
        html = client.get(path, headers={"HX-Request": "true"}).get_data(as_text=True)
        assert html.index("Erste") < html.index("Zweite")
        assert html.lstrip().startswith("<li")
    page = call.staff_client.get(f"/chat/{call.id}").get_data(as_text=True)
    assert "Erste" in page and 'hx-post="/chat/' in page


@pytest.mark.parametrize("text, message", [
    ("", "Bitte geben Sie eine Nachricht ein."),
    ("   \n ", "Bitte geben Sie eine Nachricht ein."),
    ("x" * 2001, "Die Nachricht ist zu lang (höchstens 2000 Zeichen)."),
])
def test_invalid_message_german_error_beside_the_field(app, make_call, text, message):
    call = make_call()
    for response in (post(call.patient_client, "/sprechstunde/chat/nachrichten", text),
                     post(call.staff_auth, f"/chat/{call.id}/nachrichten", text)):
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html
        assert 'id="chat-text-error"' in html
    assert stored(app, call.id) == []


def test_exactly_2000_characters_are_fine(app, make_call):
    call = make_call()
    assert post(call.patient_client, "/sprechstunde/chat/nachrichten", "ä" * 2000).status_code == 201
    assert len(stored(app, call.id)[0].text) == 2000


def test_chat_is_bound_to_practice_and_session(app, make_call):
    ours, theirs = make_call(), make_call()
    assert ours.staff_auth.get(f"/chat/{theirs.id}/nachrichten").status_code == 404
    assert post(ours.staff_auth, f"/chat/{ours.id}/nachrichten", "hallo").status_code == 201
    response = ours.staff_auth.client.post(f"/chat/{theirs.id}/nachrichten", data={"text": "x"},
                                           headers={"X-CSRFToken": ours.staff_auth.token, "HX-Request": "true"})
    assert response.status_code == 404
    stranger = app.test_client()
    assert stranger.get("/sprechstunde/chat/nachrichten").status_code == 404
    assert stored(app, theirs.id) == []


def test_sending_needs_csrf(app, make_call):
    call = make_call()
    response = call.patient_client.post("/sprechstunde/chat/nachrichten", data={"text": "x"},
                                        headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert stored(app, call.id) == []


def test_messages_go_with_the_appointment(app, make_call):
    call = make_call()
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Bis gleich")
    assert len(stored(app, call.id)) == 1
    assert call.staff_auth.delete(f"/patienten/termine/{call.id}").status_code == 200
    assert stored(app, call.id) == []
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(ChatMessage)).scalar() == 0


READ_MARK = re.compile(r'hx-post="([^"]+)" hx-trigger="load" hx-vals=\'\{"bis": "(\d+)"\}\'')


def read_as_the_page_says(client_or_auth, page):
    """What htmx does when a history with unread messages is shown: POST which one it showed."""
    client = getattr(client_or_auth, "client", client_or_auth)
    url, upto = READ_MARK.search(page.get_data(as_text=True)).groups()
    token = csrf_token(client, "/sprechstunde" if url.startswith("/sprechstunde") else "/patienten")
    response = client.post(url, data={"bis": upto}, headers={"X-CSRFToken": token})
    assert response.status_code == 204
    return int(upto)


def test_unread_badge_in_the_patient_list(app, make_call):
    call = make_call()
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Eins")
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Zwei")
    listing = call.staff_auth.get("/patienten/liste").get_data(as_text=True)
    assert f'id="unread-{call.id}"' in listing
    assert "2 ungelesene Nachrichten" in listing
    # Reading the conversation clears it; the staff's own messages never count.
    read_as_the_page_says(call.staff_auth, call.staff_client.get(f"/chat/{call.id}"))
    post(call.staff_auth, f"/chat/{call.id}/nachrichten", "Gelesen")
    assert f'id="unread-{call.id}"' not in call.staff_auth.get("/patienten/liste").get_data(as_text=True)


def unread_flags(app, appointment_id):
    return [(m.text, m.read_by_staff_at is None, m.read_by_patient_at is None) for m in stored(app, appointment_id)]


def test_showing_the_history_changes_nothing_until_the_page_says_so(app, make_call):
    """No GET changes state (issue 12): GET history marked messages read, so any link
    (prefetch, a foreign page's <img>) did; now the page POSTs what it showed."""
    call = make_call()
    post(call.patient_client, PATIENT_CHAT, "Eins")
    post(call.patient_client, PATIENT_CHAT, "Zwei")
    post(call.staff_auth, f"/chat/{call.id}/nachrichten", "Praxis hier")
    before = unread_flags(app, call.id)
    assert before == [("Eins", True, False), ("Zwei", True, False), ("Praxis hier", False, True)]
    pages = [call.staff_client.get(f"/chat/{call.id}"),
             call.staff_client.get(f"/chat/{call.id}/nachrichten", headers={"HX-Request": "true"}),
             call.patient_client.get(PATIENT_CHAT, headers={"HX-Request": "true"})]
    assert all(page.status_code == 200 for page in pages)
    assert unread_flags(app, call.id) == before
    # A message that comes after the page was shown stays unread.
    post(call.patient_client, PATIENT_CHAT, "Drei")
    upto = read_as_the_page_says(call.staff_auth, pages[0])
    assert upto == stored(app, call.id)[1].id
    assert unread_flags(app, call.id) == [("Eins", False, False), ("Zwei", False, False),
                                          ("Praxis hier", False, True), ("Drei", True, False)]
    # The patient's page likewise, for the practice's message.
    read_as_the_page_says(call.patient_client, pages[2])
    assert unread_flags(app, call.id)[2] == ("Praxis hier", False, False)
    # Nothing unread left for the patient: its next history asks for nothing.
    assert "hx-post" not in call.patient_client.get(PATIENT_CHAT, headers={"HX-Request": "true"}).get_data(as_text=True)


@pytest.mark.parametrize("value", ["", "abc", "-1", "1" * 11, "١"])
def test_read_mark_refuses_bad_values(app, make_call, value):
    call = make_call()
    post(call.patient_client, PATIENT_CHAT, "Eins")
    token = csrf_token(call.staff_client, "/patienten")
    response = call.staff_client.post(f"/chat/{call.id}/gelesen", data={"bis": value}, headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert unread_flags(app, call.id) == [("Eins", True, False)]


def test_read_mark_of_another_practice_is_404(app, make_call):
    ours, theirs = make_call(), make_call()
    post(theirs.patient_client, PATIENT_CHAT, "Geheim")
    token = csrf_token(ours.staff_client, "/patienten")
    response = ours.staff_client.post(f"/chat/{theirs.id}/gelesen", data={"bis": "999"}, headers={"X-CSRFToken": token})
    assert response.status_code == 404
    assert unread_flags(app, theirs.id) == [("Geheim", True, False)]


def test_a_message_to_an_open_staff_page_counts_as_read(app, make_call):
    call = make_call()
    staff = call.staff()
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Sind Sie da?")
    staff.expect("chat")
    assert f'id="unread-{call.id}"' not in call.staff_auth.get("/patienten/liste").get_data(as_text=True)
    (message,) = stored(app, call.id)
    assert message.read_by_staff_at is not None


# -- guests (further participants of a group call) -----------------------------------

PATIENT_CHAT = "/sprechstunde/chat/nachrichten"


def guest_ws(call, index=0):
    """The page of the call's guest number ``index``: known as a guest."""
    ws = call.guest(index)
    assert ws.welcome["role"] == "guest"
    return ws


def history_of(client, path=PATIENT_CHAT):
    response = client.get(path, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_guests_message_reaches_everyone_live_and_in_history(app, make_call):
    call = make_call()
    staff, patient = call.both()
    pid, guest_client = call.add_guest()
    guest = guest_ws(call)

    response = post(guest_client, PATIENT_CHAT, "Ich übersetze <gern>")
    assert response.status_code == 201
    assert response.headers["HX-Trigger"] == "chat-sent"
    (message,) = stored(app, call.id)
    assert (message.sender, message.participant_id, message.staff_id) == ("guest", pid, None)
    # The guest's own page lists it from its socket too (the guests share a channel).
    for ws in (staff, patient, guest):
        live_message = ws.expect("chat")
        assert live_message["id"] == message.id
        assert (live_message["sender"], live_message["sender_key"]) == ("guest", f"guest-{pid}")
        assert "Jonas Dolmetscher" in live_message["html"]
        assert "&lt;gern&gt;" in live_message["html"]
        assert "chat-mine" not in live_message["html"]  # call.js marks it on the sender's page
    # Open pages of staff and patient have shown it.
    (message,) = stored(app, call.id)
    assert message.read_by_staff_at is not None and message.read_by_patient_at is not None

    # The guest receives what staff and patient write from now on.
    assert post(call.staff_auth, f"/chat/{call.id}/nachrichten", "Danke fürs Übersetzen").status_code == 201
    assert post(call.patient_client, PATIENT_CHAT, "Hallo Jonas").status_code == 201
    assert guest.expect("chat")["sender"] == "staff"
    assert guest.expect("chat")["sender_key"] == "patient"

    # Everyone's history has all three, each with its writer; the reader's own are marked.
    for client, path, own in ((call.staff_client, f"/chat/{call.id}/nachrichten", "staff"),
                              (call.patient_client, PATIENT_CHAT, "patient"),
                              (guest_client, PATIENT_CHAT, f"guest-{pid}")):
        html = history_of(client, path)
        assert html.index("Ich übersetze") < html.index("Danke fürs") < html.index("Hallo Jonas")
        assert "Jonas Dolmetscher" in html
        assert html.count("chat-mine") == 1
        assert f'chat-mine" data-sender="{own.split("-")[0]}" data-sender-key="{own}"' in html


def test_a_guest_sees_nothing_from_before_it_was_added(app, make_call):
    call = make_call()
    assert post(call.patient_client, PATIENT_CHAT, "Vorher: meine Diagnose").status_code == 201
    assert post(call.staff_auth, f"/chat/{call.id}/nachrichten", "Vorher: Befund folgt").status_code == 201
    first_pid, first_client = call.add_guest()
    assert post(first_client, PATIENT_CHAT, "Jonas ist da").status_code == 201

    second_pid, second_client = call.add_guest("Maria", "Schwester")
    html = history_of(second_client)
    assert 'id="chat-empty"' in html
    assert "Vorher" not in html and "Jonas ist da" not in html
    assert "Vorher" not in history_of(first_client) and "Jonas ist da" in history_of(first_client)

    # Over the socket, too, only what is written after it joined: the first chat frame is the new one.
    guest = guest_ws(call, 1)
    assert post(call.staff_auth, f"/chat/{call.id}/nachrichten", "Willkommen").status_code == 201
    welcome = stored(app, call.id)[-1]
    assert guest.expect("chat")["id"] == welcome.id
    assert "Willkommen" in history_of(second_client) and "Vorher" not in history_of(second_client)
    # Staff and the patient still see the whole conversation.
    for client, path in ((call.staff_client, f"/chat/{call.id}/nachrichten"), (call.patient_client, PATIENT_CHAT)):
        html = history_of(client, path)
        assert all(text in html for text in ("Vorher: meine Diagnose", "Jonas ist da", "Willkommen"))


def test_another_appointments_guest_cannot_read_or_post(app, make_call):
    from app.patients.links import SESSION_KEY

    ours, theirs = make_call(), make_call()
    assert post(ours.patient_client, PATIENT_CHAT, "Nur für uns").status_code == 201
    their_pid, their_guest = theirs.add_guest()
    # Their guest's URLs lead to their appointment only.
    assert post(their_guest, PATIENT_CHAT, "Bei uns").status_code == 201
    assert [m.text for m in stored(app, ours.id)] == ["Nur für uns"]
    assert [m.text for m in stored(app, theirs.id)] == ["Bei uns"]
    assert "Nur für uns" not in history_of(their_guest)
    assert their_guest.get(f"/chat/{ours.id}/nachrichten").status_code != 200  # staff's URL: login
    # The session holds only a random device secret: a made-up one opens nothing.
    token = csrf_token(their_guest, "/sprechstunde")
    with their_guest.session_transaction() as session:
        session[SESSION_KEY] = "A" * 43
    assert their_guest.get(PATIENT_CHAT).status_code == 404
    response = their_guest.post(PATIENT_CHAT, data={"text": "x"},
                                headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status_code == 404
    assert [m.text for m in stored(app, ours.id)] == ["Nur für uns"]


def test_a_removed_guest_gets_404_and_its_messages_stay(app, make_call):
    call = make_call()
    pid, guest_client = call.add_guest()
    assert post(guest_client, PATIENT_CHAT, "Ich muss gehen").status_code == 201
    token = csrf_token(guest_client, "/sprechstunde")
    response = call.staff_auth.post(f"/patienten/termine/{call.id}/teilnehmer/{pid}/entfernen")
    assert response.status_code in (200, 303), response.status_code
    assert guest_client.get(PATIENT_CHAT).status_code == 404
    response = guest_client.post(PATIENT_CHAT, data={"text": "noch da?"},
                                 headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert response.status_code == 404
    (message,) = stored(app, call.id)
    assert (message.sender, message.participant_id, message.text) == ("guest", None, "Ich muss gehen")
    for client, path in ((call.staff_client, f"/chat/{call.id}/nachrichten"), (call.patient_client, PATIENT_CHAT)):
        html = history_of(client, path)
        assert "Ich muss gehen" in html and "Entfernte Person" in html and "Jonas" not in html


def test_guest_sending_needs_csrf_and_has_its_own_rate_limit(app, make_call):
    call = make_call()
    pid, guest_client = call.add_guest()
    response = guest_client.post(PATIENT_CHAT, data={"text": "x"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert stored(app, call.id) == []
    token = csrf_token(guest_client, "/sprechstunde")
    statuses = [guest_client.post(PATIENT_CHAT, data={"text": f"{n}"},
                                  headers={"X-CSRFToken": token, "HX-Request": "true"}).status_code
                for n in range(31)]
    assert statuses == [201] * 30 + [429]
    # The patient's limit is its own.
    assert post(call.patient_client, PATIENT_CHAT, "Ich darf noch").status_code == 201


def test_guest_messages_count_as_unread_for_the_practice(app, make_call):
    call = make_call()
    _, guest_client = call.add_guest()
    post(guest_client, PATIENT_CHAT, "Eins")
    post(call.patient_client, PATIENT_CHAT, "Zwei")
    assert "2 ungelesene Nachrichten" in call.staff_auth.get("/patienten/liste").get_data(as_text=True)
    read_as_the_page_says(call.staff_auth, call.staff_client.get(f"/chat/{call.id}"))
    assert f'id="unread-{call.id}"' not in call.staff_auth.get("/patienten/liste").get_data(as_text=True)
