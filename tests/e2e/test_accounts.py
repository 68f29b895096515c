"""Konten in Chromium (issue 12): the practice's admin invites an MFA, the MFA sets a
password through the e-mail's link (over SMTP from the outbox sender) and logs in; the
MFA's navigation has no Konten, and the pages pass axe-core."""
import secrets

from playwright.sync_api import expect

from tests.e2e.steps import choose_password, invite_colleague, login, open_password_link
from tests.support.axe import assert_accessible

MFA_PASSWORD = "mfa-passwort-neu-1"


def test_admin_invites_an_mfa_who_sets_a_password_and_logs_in(page, other_page, stack, smtp):
    email = f"mfa.{secrets.token_hex(4)}@praxis.example"
    login(page, stack.practices["premium"]["email"])
    row = invite_colleague(page, "Mara", "Meier", email, "MFA")
    expect(row).to_contain_text("Mara Meier")
    expect(page.locator("#toasts")).to_contain_text("Das Konto wurde angelegt.")
    assert_accessible(page, "Konten")
    # A refused invitation: the message beside the field, the focus on it.
    page.locator("#invite-form").get_by_label("Vorname").fill("Mara")
    page.locator("#invite-form").get_by_label("Nachname").fill("Meier")
    page.locator("#invite-form").get_by_label("E-Mail").fill(email)
    page.locator("#invite-form").get_by_role("button", name="Einladen").click()
    expect(page.locator("#email-error")).to_have_text("Mit dieser E-Mail-Adresse gibt es schon ein Konto.")
    expect(page.locator("#email")).to_be_focused()
    assert_accessible(page, "Konten with an error")

    link = open_password_link(other_page, smtp, email)
    assert_accessible(other_page, "set-password page")
    choose_password(other_page, MFA_PASSWORD)
    assert_accessible(other_page, "login after the password was set")
    login(other_page, email, MFA_PASSWORD)
    expect(other_page.get_by_role("link", name="Konten", exact=True)).to_have_count(0)
    assert other_page.goto("/praxis/konten").status == 403
    # The link was used up: the neutral page.
    assert other_page.goto(link).status == 404
    expect(other_page.get_by_text("Dieser Link ist nicht (mehr) gültig.")).to_be_visible()
    assert_accessible(other_page, "used link")

    page.reload()
    expect(page.locator("#accounts li", has_text=email)).not_to_contain_text("Einladung offen")
