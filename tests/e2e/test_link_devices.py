"""One device per patient link, in real Chromium (issue 12): the patient waits on one
device, the same link is opened on a second one; the first page says so and is cut off,
the practice's call page tells the practice. And a staff browser that opens a patient
link is asked before its login ends."""
import re

from playwright.sync_api import expect

from tests.e2e.steps import invite, patient_waits

TAKEN_OVER = "Der Link wurde auf einem anderen Gerät geöffnet."
STAFF_NOTICE = "Der Patient hat den Link auf einem anderen Gerät geöffnet"


def test_the_second_device_takes_over_and_everyone_sees_it(logged_in, other_page, more_pages, smtp, stack):
    staff = logged_in("premium")
    link = invite(staff, stack, smtp, "Tina", "Zweigeraet", "tina.zweigeraet@example.org")
    first = other_page
    patient_waits(first, link)

    staff.goto("/patienten")
    staff.locator("#patient-list").get_by_role("link", name=re.compile("Tina Zweigeraet")).click()
    staff.get_by_role("button", name="Anruf starten").click()
    expect(staff).to_have_url(re.compile(r"/anruf/\d+$"))
    expect(first.get_by_role("dialog", name="Ihre Praxis ruft an")).to_be_visible()
    # The news of the change goes to the call pages connected then: the staff page's
    # socket must be open (under load it connects after the patient's ring has begun).
    expect(staff.locator("#call")).to_have_attribute("data-socket", "open")
    expect(staff.get_by_text("Es klingelt beim Patienten")).to_be_visible()

    second = more_pages()
    second.goto(link)
    expect(second).to_have_url(re.compile(r"/sprechstunde/geraetetest$"))

    expect(first.get_by_role("heading", name=TAKEN_OVER)).to_be_visible()
    expect(first.get_by_role("dialog", name="Ihre Praxis ruft an")).to_be_hidden()
    expect(staff.locator("#call-notice")).to_contain_text(STAFF_NOTICE)
    # The first device stays out, also after a reload.
    first.reload()
    expect(first.get_by_role("heading", name=TAKEN_OVER)).to_be_visible()


def test_a_staff_browser_is_asked_before_going_on_as_the_patient(logged_in, smtp, stack):
    staff = logged_in("premium")
    link = invite(staff, stack, smtp, "Udo", "Selbsttest", "udo.selbsttest@example.org")
    staff.goto(link)
    expect(staff.get_by_role("heading", name="Sie sind als Mitarbeiterin oder Mitarbeiter angemeldet.")).to_be_visible()
    staff.get_by_role("link", name="Angemeldet bleiben").click()
    expect(staff.get_by_role("heading", name="Patienten", level=1)).to_be_visible()
    staff.goto(link)
    staff.get_by_role("button", name="Als Patient fortfahren / abmelden").click()
    expect(staff).to_have_url(re.compile(r"/sprechstunde/geraetetest$"))
    staff.goto("/patienten")
    expect(staff).to_have_url(re.compile(r"/login"))
