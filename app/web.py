"""Request plumbing shared by all domains: loading inside the practice, page-or-fragment,
toasts, headers, errors, the origin check and the trusted reverse proxy."""
import ipaddress
from urllib.parse import urlsplit

from flask import (
    abort,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import db, login_manager, talisman
from app.timeutil import to_local

# No inline scripts or styles anywhere (js/call reads data-* attributes instead), so no
# nonces. blob: for screenshots and the relay's media elements; connect-src 'self' covers
# the same-origin websockets in every current browser.
CSP = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
    "img-src": "'self' data: blob:", "media-src": "'self' blob:", "connect-src": "'self'",
    "font-src": "'self'", "worker-src": "'self'", "object-src": "'none'",
    "base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'none'",
}

# What the call page uses is allowed for this origin (and no frame of another, as none may
# embed us anyway); every other feature is off. autoplay, fullscreen and picture-in-picture
# are the call's own videos and buttons. The list holds the features Chromium knows
# (others, e.g. ambient-light-sensor or web-share, only print a console warning there).
PERMISSIONS_POLICY = {
    "camera": "(self)", "microphone": "(self)", "display-capture": "(self)",
    "autoplay": "(self)", "fullscreen": "(self)", "picture-in-picture": "(self)",
    **{feature: "()" for feature in (
        "accelerometer", "browsing-topics", "compute-pressure", "encrypted-media", "gamepad",
        "geolocation", "gyroscope", "hid", "identity-credentials-get", "idle-detection",
        "local-fonts", "magnetometer", "midi", "otp-credentials", "payment",
        "publickey-credentials-create", "publickey-credentials-get", "screen-wake-lock",
        "serial", "storage-access", "sync-xhr", "usb", "window-management",
        "xr-spatial-tracking",
    )},
}

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
    headers = request.headers
    return (headers.get("HX-Request") == "true"
            and headers.get("HX-History-Restore-Request") != "true")


def toast(message, level="success"):
    """Queue a toast; it rides along with the response (out-of-band for HTMX)."""
    g.setdefault("toasts", []).append({"message": str(message), "level": level})


def render(page, fragment, status=200, headers=None, **context):
    """The whole page for a normal request, only the fragment for HTMX."""
    if is_htmx():
        toasts = render_template("_toasts.html", toasts=g.get("toasts", []), oob=True)
        body = render_template(fragment, **context) + toasts
    else:
        body = render_template(page, fragment=fragment, **context)
    response_headers = {"Vary": "HX-Request"}
    response_headers.update(headers or {})
    return body, status, response_headers


def error_page(status, message):
    if is_htmx():
        return render_template("_message.html", message=message, level="error"), status
    return render_template("error.html", status=status, message=message), status


def _origin_of(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def own_origins():
    """This app's origins: as the request reached it (behind a trusted proxy: as the
    browser saw it) and as PUBLIC_BASE_URL names it."""
    return {f"{request.scheme}://{request.host}".lower(),
            _origin_of(current_app.config["PUBLIC_BASE_URL"])}


def same_origin_socket():
    # Browsers send Origin with every websocket handshake; a foreign page must not ride
    # on the user's cookies (SameSite=Lax alone does not cover same-site subdomains).
    # Only clients that are not browsers omit it, and they carry no one's cookies.
    origin = request.headers.get("Origin")
    return origin is None or origin.lower() in own_origins()


UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def check_origin():
    """Every state change must come from a page of this app, on top of the CSRF token.

    Origin first (every current browser sends it with a POST; `null` counts as
    foreign), else the Referer, which `Referrer-Policy: same-origin` keeps on same-origin
    requests only. Over HTTPS a request with neither is refused, as Flask-WTF's strict
    referrer check did; this check replaces that one because it also accepts
    PUBLIC_BASE_URL's origin (a proxy that rewrites Host) and reads Origin first.
    """
    if request.method not in UNSAFE_METHODS:
        return
    origin = request.headers.get("Origin") or None
    if origin is None and request.referrer:
        origin = _origin_of(request.referrer) or "null"
    if origin is None:
        if request.is_secure:
            raise CSRFError("neither Origin nor Referer on a secure request")
        return
    if origin.lower() not in own_origins():
        raise CSRFError("request from a foreign origin")


class TrustedProxy:
    """X-Forwarded-For, -Proto and -Host count only when the request comes from an
    address in FORWARDED_ALLOW_IPS (the variable gunicorn reads for the same purpose, so
    both agree); from anyone else they are ignored. One proxy hop is trusted."""

    def __init__(self, wsgi_app, allowed):
        entries = [entry.strip() for entry in allowed.split(",") if entry.strip()]
        self.any = "*" in entries
        self.networks = [ipaddress.ip_network(entry, strict=False)
                         for entry in entries if entry != "*"]
        self.plain = wsgi_app
        self.fixed = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1)

    def trusted(self, address):
        if self.any:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.trusted(environ.get("REMOTE_ADDR", "")):
            return self.fixed(environ, start_response)
        return self.plain(environ, start_response)


def current_practice():
    return current_user.practice


# Ids in URLs are unbounded, PostgreSQL's INTEGER is not: a larger one must be a 404, not a 500.
MAX_ID = 2**31 - 1


def load_in_practice(model, object_id, practice, **filters):
    """The ``model`` row with this id inside the practice, or 404.

    Every tenant's row carries ``practice_id``; loading through here is what keeps one
    practice out of another's data. Another practice's id answers exactly like an
    unknown one. ``filters`` narrow further (a participant of this appointment).
    """
    if not 0 < object_id <= MAX_ID:
        abort(404)
    row = db.session.execute(
        db.select(model).filter_by(id=object_id, practice_id=practice.id, **filters)
    ).scalar_one_or_none()
    if row is None:
        abort(404)
    return row


def init_app(app):
    app.wsgi_app = TrustedProxy(app.wsgi_app, app.config["FORWARDED_ALLOW_IPS"])
    # After CSRFProtect's own before_request (registered first): token, then origin.
    app.before_request(check_origin)

    @login_manager.unauthorized_handler
    def unauthorized():
        # htmx would swap the login page into the panel; send the whole page there instead.
        if is_htmx():
            page = urlsplit(request.headers.get("HX-Current-URL", "")).path or None
            return "", 401, {"HX-Redirect": url_for("auth.login", next=page)}
        page = request.path if request.method == "GET" else None
        return redirect(url_for("auth.login", next=page))

    config = app.config
    talisman.init_app(
        app,
        content_security_policy=CSP,
        permissions_policy=PERMISSIONS_POLICY,
        # Browsers take HSTS only from https responses, so Talisman sends it only on those
        # (directly or X-Forwarded-Proto from Caddy); production is always behind https.
        strict_transport_security=config["ENV_NAME"] == "production",
        strict_transport_security_max_age=365 * 24 * 3600,
        # As deploy/Caddyfile says it: the practice's subdomains are not ours to pin.
        strict_transport_security_include_subdomains=False,
        # Caddy redirects http to https; the app itself also answers local checks
        # (flask doctor, systemd) over http://127.0.0.1, which a redirect would break.
        force_https=False,
        frame_options="DENY",
        # same-origin: our own form posts carry a Referer (the origin check's fallback),
        # no other site ever learns a URL of ours.
        referrer_policy="same-origin",
        # Talisman would force Secure cookies on, breaking development over http://localhost:
        # config.py decides (always Secure in production or behind https).
        session_cookie_secure=config["SESSION_COOKIE_SECURE"],
        session_cookie_http_only=True,
        session_cookie_samesite=config["SESSION_COOKIE_SAMESITE"],
    )

    @app.after_request
    def no_store(response):
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
        return {"is_htmx": is_htmx(), "to_local": to_local, "get_locale": get_locale}
