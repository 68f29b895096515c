"""SMS through Vonage's SMS API (the vonage SDK)."""
import logging

import requests
from flask import current_app
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import (
    AuthenticationError,
    ForbiddenError,
    HttpRequestError,
    RateLimitedError,
    ServerError,
)
from vonage_sms import SmsError, SmsMessage

# The SDK logs every request body at DEBUG (to the logger "vonage"): phone numbers and
# link tokens must never reach a log, whatever level the application runs at.
logging.getLogger("vonage").setLevel(logging.WARNING)

# Vonage SMS API status codes worth another try later (throttled, internal error,
# communication failure, partner quota exceeded).
TEMPORARY_STATUSES = {"1", "5", "8", "9"}


class TemporaryError(Exception):
    pass


class PermanentError(Exception):
    pass


_clients = {}


def _client():
    cfg = current_app.config
    # One client (and connection pool) per set of credentials and host.
    key = (cfg["VONAGE_API_KEY"], cfg["VONAGE_API_SECRET"], cfg["VONAGE_REST_HOST"])
    client = _clients.get(key)
    if client is None:
        options = {"timeout": 15}
        if cfg.get("VONAGE_REST_HOST"):
            options["rest_host"] = cfg["VONAGE_REST_HOST"]
        client = _clients[key] = Vonage(
            Auth(api_key=cfg["VONAGE_API_KEY"], api_secret=cfg["VONAGE_API_SECRET"]),
            HttpClientOptions(**options),
        )
    return client


def send_sms(to_e164: str, text: str) -> str:
    """Send; return the provider's message id, or raise TemporaryError/PermanentError."""
    cfg = current_app.config
    if not (cfg.get("VONAGE_API_KEY") and cfg.get("VONAGE_API_SECRET")):
        raise PermanentError("sms not configured")
    message = SmsMessage(to=to_e164.lstrip("+"), from_=cfg["VONAGE_SMS_FROM"], text=text,
                         type="unicode")
    try:
        response = _client().sms.send(message)
    except SmsError as exc:
        status = _status_of(str(exc))
        if status in TEMPORARY_STATUSES:
            raise TemporaryError(f"vonage status {status}") from None
        raise PermanentError(f"vonage status {status}") from None
    except (ServerError, RateLimitedError) as exc:
        raise TemporaryError(f"vonage http {type(exc).__name__}") from None
    except (AuthenticationError, ForbiddenError) as exc:
        raise PermanentError(f"vonage http {type(exc).__name__}") from None
    except HttpRequestError as exc:
        raise TemporaryError(f"vonage http {type(exc).__name__}") from None
    except (requests.RequestException, OSError) as exc:
        raise TemporaryError(f"vonage unreachable: {type(exc).__name__}") from None
    return response.messages[0].message_id


def _status_of(text: str) -> str:
    # "Sms.send_message method failed with error code 3: ..." — keep only the code.
    marker = "error code "
    if marker in text:
        return text.split(marker, 1)[1].split(":", 1)[0].strip()
    return "?"
