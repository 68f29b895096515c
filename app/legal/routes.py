from flask import current_app, render_template
from flask_babel import get_locale

from app.legal import bp
from app.legal.operator import operator


def _page(name):
    # The legal text itself is one template per language: a contract is read as a
    # whole, not assembled from translated fragments.
    lang = "en" if get_locale().language == "en" else "de"
    return render_template(f"legal/{lang}/{name}.html", operator=operator(current_app.config))


@bp.route("/impressum")
def impressum():
    return _page("impressum")


@bp.route("/datenschutz")
def privacy():
    return _page("privacy")


@bp.route("/nutzungsbedingungen")
def terms():
    return _page("terms")
