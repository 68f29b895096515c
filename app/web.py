"""Request plumbing shared by all domains: page-or-fragment, toasts, headers, errors."""
from urllib.parse import urlsplit

from flask import g, has_request_context, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from app.extensions import db, login_manager

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

ERROR_MESSAGES = {
    400: _l("Die Anfrage war fehlerhaft."),
    401: _l("Bitte melden Sie sich an."),
    403: _l("Dafür fehlt die Berechtigung."),
    404: _l("Diese Seite gibt es nicht."),
    405: _l("Diese Aktion ist hier nicht möglich."),
    413: _l("Die Anfrage ist zu groß."),
    429: _l("Zu viele Versuche. Bitte warten Sie einen Moment."),
}


def is_htmx() -> bool:
    if not has_request_context():
        return False
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def toast(message, level="success"):
    """Queue a toast; it rides along with the response (out-of-band for HTMX)."""
    g.setdefault("toasts", []).append({"message": str(message), "level": level})


def render(page, fragment, status=200, headers=None, **context):
    """The whole page for a normal request, only the fragment for HTMX."""
    if is_htmx():
        body = render_template(fragment, **context) + render_template("_toasts.html", toasts=g.get("toasts", []), oob=True)
    else:
        body = render_template(page, fragment=fragment, **context)
    response_headers = {"Vary": "HX-Request"}
    response_headers.update(headers or {})
    return body, status, response_headers


def error_page(status, message):
    if is_htmx():
        return render_template("_message.html", message=message, level="error"), status
    return render_template("error.html", status=status, message=message), status


def current_practice():
    return current_user.practice


def init_app(app):
    @login_manager.user_loader
    def load_user(user_id):
        from app.auth.models import Staff

        if not str(user_id).isdigit():
            return None
        # Every staff request needs the practice (tenant scope): one query instead of two.
        return db.session.get(Staff, int(user_id), options=[db.joinedload(Staff.practice)])

    @login_manager.unauthorized_handler
    def unauthorized():
        # htmx would swap the login page into the panel; send the whole page there instead.
        if is_htmx():
            page = urlsplit(request.headers.get("HX-Current-URL", "")).path or None
            return "", 401, {"HX-Redirect": url_for("auth.login", next=page)}
        return redirect(url_for("auth.login", next=request.path if request.method == "GET" else None))

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Permissions-Policy", "geolocation=(), payment=()")
        if not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.response is not None:
            return exc.response
        message = ERROR_MESSAGES.get(exc.code, _l("Es ist ein Fehler aufgetreten."))
        return error_page(exc.code, str(message))

    @app.context_processor
    def inject():
        from flask_babel import get_locale

        from app.timeutil import to_local

        return {"is_htmx": is_htmx(), "to_local": to_local, "get_locale": get_locale}
