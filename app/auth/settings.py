"""Einstellungen of the practice (issue 11): reminders and the phone number for
patients. Only the Praxisadmin may see or change them; checked here, not only hidden."""
from flask import abort, current_app, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth import bp
from app.auth.forms import PracticeSettingsForm
from app.auth.models import ADMIN
from app.extensions import db
from app.web import render, toast

FIELDS = ("remind_day_before", "remind_shortly_before", "phone", "allow_unencrypted_group_calls")


@bp.route("/einstellungen", methods=["GET", "POST"])
@login_required
def settings():
    if current_user.role != ADMIN:
        abort(403)
    practice = current_user.practice
    form = PracticeSettingsForm(obj=practice)
    status = 200
    if request.method == "POST":
        if form.validate():
            for name in FIELDS:
                setattr(practice, name, getattr(form, name).data)
            db.session.commit()
            current_app.logger.info("practice settings changed practice=%s staff=%s",
                                    practice.id, current_user.id)
            toast(_("Die Einstellungen wurden gespeichert."), "success")
        else:
            status = 422
    return render("auth/settings.html", "auth/_settings_form.html", status=status, form=form)
