"""Chat: stored with the appointment, sent over HTTP, live on both sockets, unread marks."""
import pytest

from app.chat.models import ChatMessage
from app.extensions import db
from tests.test_signalling import live, make_call  # noqa: F401 - fixtures


def post(client_or_auth, path, text):
    """A chat send as HTMX does it: the CSRF token from the page in the header."""
    from tests.conftest import CSRF_RE

    client = getattr(client_or_auth, "client", client_or_auth)
    page = client.get("/sprechstunde" if path.startswith("/sprechstunde") else path.rsplit("/", 1)[0])
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    return client.post(path, data={"text": text}, headers={"X-CSRFToken": token, "HX-Request": "true"})


def stored(app, appointment_id):
    with app.app_context():
        return db.session.execute(
            db.select(ChatMessage).filter_by(appointment_id=appointment_id).order_by(ChatMessage.id)
        ).scalars().all()


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

    response = post(call.staff, f"/chat/{call.id}/nachrichten", "Wir rufen gleich an.")
    assert response.status_code == 201
    assert response.headers["HX-Trigger"] == "chat-sent"
    assert patient.expect("chat")["sender"] == "staff"
    assert staff.expect("chat")["sender"] == "staff"
    staff_message = stored(app, call.id)[-1]
    assert staff_message.staff_id is not None


def test_history_fragment_on_both_sides(app, make_call):
    call = make_call()
    empty = call.patient_client.get("/sprechstunde/chat/nachrichten").get_data(as_text=True)
    assert 'id="chat-empty"' in empty
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Erste")
    post(call.staff, f"/chat/{call.id}/nachrichten", "Zweite")
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
                     post(call.staff, f"/chat/{call.id}/nachrichten", text)):
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
    assert ours.staff.get(f"/chat/{theirs.id}/nachrichten").status_code == 404
    assert post(ours.staff, f"/chat/{ours.id}/nachrichten", "hallo").status_code == 201
    response = ours.staff.client.post(f"/chat/{theirs.id}/nachrichten", data={"text": "x"},
                                      headers={"X-CSRFToken": ours.staff.token, "HX-Request": "true"})
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
    assert call.staff.delete(f"/patienten/termine/{call.id}").status_code == 200
    assert stored(app, call.id) == []
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(ChatMessage)).scalar() == 0


def test_unread_badge_in_the_patient_list(app, make_call):
    call = make_call()
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Eins")
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Zwei")
    listing = call.staff.get("/patienten/liste").get_data(as_text=True)
    assert f'id="unread-{call.id}"' in listing
    assert "2 ungelesene Nachrichten" in listing
    # Reading the conversation clears it; the staff's own messages never count.
    call.staff_client.get(f"/chat/{call.id}")
    post(call.staff, f"/chat/{call.id}/nachrichten", "Gelesen")
    assert f'id="unread-{call.id}"' not in call.staff.get("/patienten/liste").get_data(as_text=True)


def test_a_message_to_an_open_staff_page_counts_as_read(app, make_call):
    call = make_call()
    staff = call.staff_ws()
    post(call.patient_client, "/sprechstunde/chat/nachrichten", "Sind Sie da?")
    staff.expect("chat")
    assert f'id="unread-{call.id}"' not in call.staff.get("/patienten/liste").get_data(as_text=True)
    (message,) = stored(app, call.id)
    assert message.read_by_staff_at is not None
