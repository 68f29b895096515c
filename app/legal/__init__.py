"""The operator's legal pages, readable without login: Impressum (§ 5 DDG),
Datenschutzerklärung (DSGVO Art. 13) and Nutzungsbedingungen, filled from OPERATOR_*."""
from flask import Blueprint

bp = Blueprint("legal", __name__)

from app.legal import operator, routes  # noqa: E402,F401
