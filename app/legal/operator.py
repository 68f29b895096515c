"""Who runs this install: the operator named on the legal pages and in the e-mails."""

# Without these a production start stops (app/__init__.py): an Impressum without an
# address, or a Datenschutzerklärung without a data protection contact, is unlawful.
REQUIRED = ("OPERATOR_NAME", "OPERATOR_ADDRESS", "OPERATOR_EMAIL", "OPERATOR_DPO")


def missing(config):
    return [key for key in REQUIRED if not (config.get(key) or "").strip()]


def operator(config):
    """The OPERATOR_* settings for the templates; the address keeps its lines ("|" or a
    newline in the environment file separates them)."""
    def lines(key):
        text = (config.get(key) or "").replace("|", "\n")
        return [part.strip() for part in text.splitlines() if part.strip()]

    return {
        "name": (config.get("OPERATOR_NAME") or "").strip(),
        "address": lines("OPERATOR_ADDRESS"),
        "email": (config.get("OPERATOR_EMAIL") or "").strip(),
        "phone": (config.get("OPERATOR_PHONE") or "").strip(),
        "representative": (config.get("OPERATOR_REPRESENTATIVE") or "").strip(),
        "register": (config.get("OPERATOR_REGISTER") or "").strip(),
        "vat_id": (config.get("OPERATOR_VAT_ID") or "").strip(),
        "dpo": lines("OPERATOR_DPO"),
        "retention_days": config["RETENTION_DAYS"],
    }
