"""axe-core (from the npm registry: package.json, installed by ./test with `npm ci`) in the
browser tests: ``assert_accessible(page, "login")`` runs every rule axe runs by default
(WCAG 2.x A/AA and best practices) on what the page shows now and fails with one line
per violation and element.

The app's CSP allows scripts from its own origin only, so axe is not inlined: the page
loads it from a same-origin address that Playwright answers from node_modules."""
from pathlib import Path

from tests.support.machine import need

AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_PATH = "/__e2e__/axe.min.js"
# Besides the defaults: a visible label that the accessible name does not contain
# ("Foto" for "Bildschirmfoto") is what a voice-control user trips over.
EXTRA_RULES = {"label-content-name-mismatch": {"enabled": True}}

RUN = """async (rules) => {
  const result = await axe.run(document, { rules });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary.replace(/\\s+/g, " ")),
  }));
}"""


def axe_missing():
    return None if AXE_JS.exists() else f"axe-core is not installed ({AXE_JS}): run `npm ci`"


def _inject(page):
    if page.evaluate("() => typeof window.axe !== 'undefined'"):
        return
    if not getattr(page, "_axe_routed", False):
        page.route("**" + AXE_PATH, lambda route: route.fulfill(path=str(AXE_JS), content_type="text/javascript"))
        page._axe_routed = True
    page.add_script_tag(url=AXE_PATH)


def violations(page):
    """axe's violations on the page as it is now: [{id, impact, help, nodes}]."""
    need(axe_missing(), "REQUIRE_BROWSER")
    _inject(page)
    return page.evaluate(RUN, EXTRA_RULES)


def assert_accessible(page, where):
    found = violations(page)
    lines = [f"{v['id']} ({v['impact']}): {v['help']}\n" + "\n".join("    " + n for n in v["nodes"]) for v in found]
    assert not found, f"axe on {where} ({page.url}):\n  " + "\n  ".join(lines)
