from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app.auth import bp
from app.auth.forms import LoginForm
from app.auth.services import authenticate
from app.extensions import limiter


def _login_limit():
    return current_app.config["LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("patients.index"))
    form = LoginForm()
    error = None
    status = 200
    if form.validate_on_submit():
        staff = authenticate(form.email.data, form.password.data)
        if staff is not None:
            # A fresh session against fixation, but the language chosen on the login page stays.
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            login_user(staff)
            current_app.logger.info("login staff=%s practice=%s", staff.id, staff.practice_id)
            return redirect(_safe_next(request.args.get("next")))
        # Same words for an unknown address and a wrong password.
        error = _("E-Mail-Adresse oder Passwort ist falsch.")
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form, error=error), status


def _safe_next(target):
    if (target and target.startswith("/") and not target.startswith("//")
            and not urlsplit(target).netloc):
        return target
    return url_for("patients.index")


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def set_language():
    lang = request.form.get("lang", "")
    if lang in current_app.config["LANGUAGES"]:
        session["lang"] = lang
    return redirect(_safe_next(request.form.get("next")))
