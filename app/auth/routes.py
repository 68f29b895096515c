from urllib.parse import urlsplit

from flask import abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from app import events
from app.auth import audit, bp, sessions, throttle
from app.auth.forms import LoginForm
from app.auth.models import ADMIN
from app.auth.services import authenticate, staff_by_email
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
        email = form.email.data
        if throttle.locked(email):
            # Not even the right password now; the words are the same for every address.
            return _locked(form, email)
        staff = authenticate(email, form.password.data)
        account = staff or staff_by_email(email)
        if account is not None and not account.active:
            # Right or wrong password: the same answer, and it counts as a failure, so
            # the lock comes the same way for both.
            throttle.failed(email)
            current_app.logger.info("login refused deactivated staff=%s", account.id)
            error = _("Dieses Konto ist deaktiviert. Bitte wenden Sie sich an die "
                      "Praxisadministration.")
            return render_template("auth/login.html", form=form, error=error, ended=False), 403
        if staff is not None:
            throttle.succeeded(email)
            # A fresh session against fixation, but the language chosen on the login page stays.
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            login_user(staff)
            audit.by_staff(staff, audit.LOGIN)  # commits with the login session
            session[sessions.SESSION_KEY] = sessions.start(staff)
            current_app.logger.info("login staff=%s practice=%s", staff.id, staff.practice_id)
            return redirect(_safe_next(request.args.get("next")))
        if throttle.failed(email):
            locked_staff = staff_by_email(email)
            if locked_staff is not None:
                current_app.logger.info("login locked staff=%s", locked_staff.id)
                events.login_locked.send(locked_staff.id, practice_id=locked_staff.practice_id)
            return _locked(form, email)
        # Same words for an unknown address and a wrong password.
        error = _("E-Mail-Adresse oder Passwort ist falsch.")
        status = 401
    elif request.method == "POST":
        status = 400
    ended = request.method == "GET" and session.pop("ended", False)
    password_set = request.method == "GET" and session.pop("password_set", False)
    return render_template("auth/login.html", form=form, error=error, ended=ended,
                           password_set=password_set), status


def _locked(form, email):
    error = _("Zu viele fehlgeschlagene Anmeldungen mit dieser E-Mail-Adresse. Die Anmeldung "
              "ist für %(minutes)d Minuten gesperrt.", minutes=throttle.minutes_left(email))
    return render_template("auth/login.html", form=form, error=error, ended=False), 429


def _safe_next(target):
    if (target and target.startswith("/") and not target.startswith("//")
            and not urlsplit(target).netloc):
        return target
    return url_for("patients.index")


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    # Every session of the account ends, not only this browser's: a cookie copied
    # before (another device, a thief) must not outlive the logout.
    audit.by_staff(current_user, audit.LOGOUT)  # commits with the end of the sessions
    sessions.end_all(current_user.id)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def set_language():
    lang = request.form.get("lang", "")
    if lang in current_app.config["LANGUAGES"]:
        session["lang"] = lang
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/praxis/protokoll")
@login_required
def audit_log():
    """The practice's audit log, for its admin (DSGVO Art. 5(2): showing what happened)."""
    if current_user.role != ADMIN:
        abort(403)
    practice = current_user.practice
    staff_names = {s.id: s.name for s in practice.staff}
    return render_template("auth/audit.html", entries=audit.entries(practice.id),
                           staff_names=staff_names, labels=audit.LABELS,
                           actor_labels=audit.ACTOR_LABELS, object_labels=audit.OBJECT_LABELS,
                           tz=practice.timezone)
