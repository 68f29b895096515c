from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import account_pages, cli, routes, settings  # noqa: E402,F401
