"""German by default, English on request, and a catalogue that keeps up with the code.

The English pages are checked against the English words a user would read, and
against every German msgid of the catalogue: none may be left on an English page.
The catalogue tests make a new German string without an English translation fail CI.
"""
import html
import re
import subprocess
import sys

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from config import BASE_DIR
from tests.support.forms import appointment_form

TRANSLATIONS = BASE_DIR / "translations"
PO_PATH = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"
MO_PATH = PO_PATH.with_suffix(".mo")
# The extraction a developer runs, so "up to date" means the same thing here and there:
#   .venv/bin/pybabel extract -F babel.cfg -k _l -o translations/messages.pot --ignore-dirs='.venv instance tests' .
#   .venv/bin/pybabel update -i translations/messages.pot -d translations
# then translate the new entries in the .po and remove their fuzzy flags.
EXTRACT = ["extract", "-F", "babel.cfg", "-k", "_l", "--ignore-dirs=.venv instance tests", "."]


def load_po():
    with open(PO_PATH, "rb") as f:
        return read_po(f)


def msgid_key(message):
    return message.id if isinstance(message.id, str) else tuple(message.id)


def text_of(response):
    """The page with entities decoded; attributes stay, as placeholders and labels are read too."""
    return html.unescape(response.get_data(as_text=True))


def german_left_over(text):
    """The catalogue's German msgids that still appear in `text` as whole words."""
    left = []
    for message in load_po():
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        for german, english in zip(ids, strings):
            if german == english or "%(" in german or "{" in german:
                continue
            if re.search(r"(?<!\w)" + re.escape(german) + r"(?!\w)", text):
                left.append(german)
    return left


def switch_language(client, auth, lang, next_path):
    token = auth.token or auth.csrf("/login")
    return client.post("/language", data={"lang": lang, "next": next_path, "csrf_token": token})


@pytest.fixture
def practice_email(make_practice):
    # A name that is no German UI word, so the left-over check sees only UI text.
    _, email = make_practice(tariff="basis", name="Surgery Miller")
    return email


def test_german_by_default(client, auth, practice_email):
    login = client.get("/login")
    page = login.get_data(as_text=True)
    assert '<html lang="de">' in page
    for word in ("Anmelden", "Passwort", "E-Mail"):
        assert word in page
    assert "Log in" not in page

    assert auth.login(practice_email).status_code == 302
    patients = client.get("/patienten").get_data(as_text=True)
    assert '<html lang="de">' in patients
    for word in ("Patienten", "Termin erstellen", "Abmelden", "Anstehende Termine"):
        assert word in patients
    assert "Create appointment" not in patients


def test_english_after_switching_and_back(client, auth, practice_email):
    auth.login(practice_email)

    response = switch_language(client, auth, "en", "/patienten")
    assert response.status_code == 302
    assert response.headers["Location"] == "/patienten"

    patients = client.get("/patienten")
    page = patients.get_data(as_text=True)
    assert '<html lang="en">' in page
    for words in ("Patients", "Create appointment", "Log out", "Select a patient or create an appointment."):
        assert words in page
    assert german_left_over(text_of(patients)) == []

    form = auth.get("/patienten/termin-erstellen")
    text = text_of(form)
    for words in ("First name", "Last name", "Email", "Mobile number", "Date", "Time",
                  "Expected duration (minutes)", "Search invited people", "Name or email",
                  "Send invitation by SMS", "Invite",
                  "The user has consented to receive SMS and email messages from me",
                  # Basis tariff: the hint beside the disabled SMS box.
                  "SMS invitations are included in the Standard and Premium plans."):
        assert words in text, words
    assert german_left_over(text) == []

    created = auth.post("/patienten/termine", data=appointment_form())
    assert created.status_code == 201
    text = text_of(created)
    assert "Your appointment has been created. The invitation is being sent now." in text
    assert "If the email does not arrive, ask the participant to check their spam folder." in text
    assert german_left_over(text) == []

    back = switch_language(client, auth, "de", "/patienten")
    assert back.headers["Location"] == "/patienten"
    page = client.get("/patienten").get_data(as_text=True)
    assert '<html lang="de">' in page
    assert "Termin erstellen" in page and "Create appointment" not in page
    form = auth.get("/patienten/termin-erstellen").get_data(as_text=True)
    assert "Eingeladene Personen suchen" in form and "Einladen" in form


@pytest.mark.parametrize("overrides, status, english, german", [
    ({"email": "keine-adresse"}, 422,
     "Please enter a valid email address, e.g. name@example.com.",
     "Bitte geben Sie eine gültige E-Mail-Adresse ein, z. B. name@beispiel.de."),
    ({"consent": None}, 422,
     "An invitation cannot be sent without consent.",
     "Ohne Einwilligung kann keine Einladung verschickt werden."),
    ({"duration": "500"}, 422,
     "Please enter a duration between 5 and 180 minutes.",
     "Bitte geben Sie eine Dauer zwischen 5 und 180 Minuten an."),
    # A tariff refusal speaks the user's language too.
    ({"send_sms": "y", "mobile": "0151 23456789"}, 403,
     "SMS invitations are included in the Standard and Premium plans.",
     "SMS-Einladungen sind in den Tarifen Standard und Premium enthalten."),
])
def test_validation_messages_follow_the_language(client, auth, practice_email, overrides, status, english, german):
    auth.login(practice_email)

    response = auth.post("/patienten/termine", data=appointment_form(**overrides))
    assert response.status_code == status
    assert german in text_of(response)

    switch_language(client, auth, "en", "/patienten")
    response = auth.post("/patienten/termine", data=appointment_form(**overrides))
    assert response.status_code == status
    text = text_of(response)
    assert english in text
    assert german not in text
    # The user's input stays in the fields, whatever the language.
    assert "Erika" in response.get_data(as_text=True)


def test_login_page_in_english_and_the_choice_survives_login(client, auth, practice_email):
    switch_language(client, auth, "en", "/login")
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Log in" in page and "Password" in page and "Anmelden" not in page

    auth.csrf("/login")
    wrong = client.post("/login", data={"email": practice_email, "password": "falsch-falsch", "csrf_token": auth.token})
    assert wrong.status_code == 401
    assert "Incorrect email address or password." in text_of(wrong)

    assert auth.login(practice_email).status_code == 302
    page = client.get("/patienten").get_data(as_text=True)
    assert "Create appointment" in page


def test_unknown_language_is_ignored(client, auth, practice_email):
    auth.login(practice_email)
    response = switch_language(client, auth, "fr", "/patienten")
    assert response.status_code == 302
    assert "Termin erstellen" in client.get("/patienten").get_data(as_text=True)


def test_every_msgid_has_an_english_translation():
    catalog = load_po()
    untranslated = [m.id for m in catalog if m.id and (
        not (m.string if isinstance(m.string, str) else all(m.string)) or m.fuzzy)]
    assert untranslated == [], "Translate these in translations/en/LC_MESSAGES/messages.po"
    # Placeholders must survive translation, e.g. %(name)s.
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert problems == []
    assert len(catalog) > 100  # guards against an accidentally emptied catalogue


def test_catalogue_is_up_to_date_with_the_code(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *EXTRACT, "-o", str(pot)],
                   cwd=BASE_DIR, check=True, capture_output=True)
    with open(pot, "rb") as f:
        in_code = {msgid_key(m) for m in read_po(f) if m.id}
    in_po = {msgid_key(m) for m in load_po() if m.id}
    assert in_code - in_po == set(), (
        "New strings without translation: run pybabel extract and update (top of this file) and translate them")
    assert in_po - in_code == set(), "Strings no longer in the code: run pybabel extract and update (top of this file)"


def test_compiled_catalogue_matches_the_po():
    if not MO_PATH.exists():
        pytest.fail(f"{MO_PATH.relative_to(BASE_DIR)} is missing: run pybabel compile -d translations (./test does)")
    with open(MO_PATH, "rb") as f:
        compiled = {msgid_key(m): m.string for m in read_mo(f) if m.id}
    # pybabel compile leaves out untranslated and fuzzy entries; the test above reports those.
    source = {msgid_key(m): (m.string if isinstance(m.string, str) else tuple(m.string))
              for m in load_po() if m.id and not m.fuzzy
              and (m.string if isinstance(m.string, str) else all(m.string))}
    compiled = {k: (v if isinstance(v, str) else tuple(v)) for k, v in compiled.items()}
    assert compiled == source, "The .mo is stale: run pybabel compile -d translations (./test does)"


@pytest.mark.parametrize("accept, lang", [
    ("en-GB,en;q=0.9", "en"), ("en-US", "en"), ("de-DE,de;q=0.9,en;q=0.8", "de"), ("fr-FR", "de"), ("", "de"),
])
def test_the_browsers_language_picks_the_first_language(client, accept, lang):
    page = client.get("/login", headers={"Accept-Language": accept}).get_data(as_text=True)
    assert f'<html lang="{lang}">' in page


def test_the_users_choice_outlasts_the_browsers_language(client, auth, practice_email):
    english = {"Accept-Language": "en-GB"}
    auth.login(practice_email)
    switch_language(client, auth, "de", "/patienten")
    assert "Termin erstellen" in client.get("/patienten", headers=english).get_data(as_text=True)
