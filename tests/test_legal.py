"""The operator's legal pages (issue 12): Impressum, Datenschutzerklärung and
Nutzungsbedingungen, readable without login, in German and English, filled from the
OPERATOR_* settings and linked from every page; a production start without the
operator's data stops and names what is missing."""
import pytest

from app import create_app
from tests.support.html import Html, squash
from tests.support.webapp import make_config

OPERATOR = {"OPERATOR_NAME": "Praxisdienste Beispiel GmbH", "OPERATOR_ADDRESS": "Hauptstraße 5|10115 Berlin",
            "OPERATOR_EMAIL": "kontakt@praxisdienste.example", "OPERATOR_PHONE": "+49 30 1234567",
            "OPERATOR_REGISTER": "Amtsgericht Charlottenburg HRB 12345",
            "OPERATOR_DPO": "Dr. Daten Schutz|dsb@praxisdienste.example"}
PAGES = {"/impressum": ("Impressum", "Legal notice (Impressum)"),
         "/datenschutz": ("Datenschutzerklärung für die Videosprechstunde", "Privacy notice for the video consultation"),
         "/nutzungsbedingungen": ("Nutzungsbedingungen", "Terms of use")}


def h1(page):
    (heading,) = page.find_all("h1")
    return squash(heading["text"])


def hrefs(response):
    return [a["attrs"].get("href") for a in Html(response.get_data(as_text=True)).find_all("a")]


@pytest.fixture
def practice_email(make_practice):
    return make_practice()[1]


@pytest.fixture
def config_overrides():
    return dict(OPERATOR, RETENTION_DAYS=60)


@pytest.mark.parametrize("path", PAGES)
def test_each_page_without_login_in_german_and_english(client, path):
    german, english = PAGES[path]
    response = client.get(path)
    assert response.status_code == 200
    page = Html(response.get_data(as_text=True))
    assert h1(page) == german
    text = response.get_data(as_text=True)
    assert OPERATOR["OPERATOR_NAME"] in text
    if path != "/nutzungsbedingungen":
        assert "dsb@praxisdienste.example" in text
    if path == "/impressum":
        assert "Hauptstraße 5<br>" in text and "10115 Berlin<br>" in text and "HRB 12345" in text
    if path == "/datenschutz":
        assert "60 Tage nach dem Termin" in text  # RETENTION_DAYS, not a number in the text

    client.post("/language", data={"lang": "en", "csrf_token": page.value("csrf_token")})
    response = client.get(path)
    assert h1(Html(response.get_data(as_text=True))) == english
    assert OPERATOR["OPERATOR_NAME"] in response.get_data(as_text=True)


def test_every_page_links_them(client, auth, practice_email):
    for path in ("/login", "/impressum"):
        links = hrefs(client.get(path))
        assert {"/impressum", "/datenschutz", "/nutzungsbedingungen"} <= set(links), links
    auth.login(practice_email)
    assert "/datenschutz" in hrefs(auth.get("/patienten", htmx=False))


def test_markup_in_the_settings_is_shown_as_text(tmp_path, database_url):
    app = create_app(make_config(tmp_path, database_url, OPERATOR_NAME="<script>alert(1)</script>"))
    text = app.test_client().get("/impressum").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text


@pytest.mark.parametrize("given, missing", [
    ({}, "OPERATOR_NAME, OPERATOR_ADDRESS, OPERATOR_EMAIL, OPERATOR_DPO"),
    ({"OPERATOR_NAME": "Praxisdienste GmbH", "OPERATOR_EMAIL": "a@b.example"}, "OPERATOR_ADDRESS, OPERATOR_DPO"),
    ({"OPERATOR_NAME": "  ", "OPERATOR_ADDRESS": "x", "OPERATOR_EMAIL": "a@b.example", "OPERATOR_DPO": "y"},
     "OPERATOR_NAME"),
])
def test_a_production_start_without_the_operator_stops_and_names_what_is_missing(tmp_path, database_url,
                                                                                   given, missing):
    blank = {key: "" for key in ("OPERATOR_NAME", "OPERATOR_ADDRESS", "OPERATOR_EMAIL", "OPERATOR_DPO")}
    config = make_config(tmp_path, database_url, ENV_NAME="production", **{**blank, **given})
    with pytest.raises(SystemExit, match=f"^{missing} not set"):
        create_app(config)
    # Complete, it starts.
    assert create_app(make_config(tmp_path, database_url, ENV_NAME="production", **OPERATOR))
