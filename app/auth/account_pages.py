"""Konten (issue 12): the Praxisadmin manages the practice's accounts; and the page behind
the e-mail's set-password link. The admin check is here, on the server, for every route;
the work is in accounts.py."""
from flask import abort, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.auth import accounts, bp
from app.auth.forms import ROLE_MISSING, InviteForm, SetPasswordForm
from app.auth.models import ADMIN, DOCTOR, ROLE_LABELS, ROLES, Staff
from app.web import error_page, is_htmx, load_in_practice, render, toast

REFUSALS = {
    accounts.LAST_ADMIN: _l("Sie sind der letzte aktive Praxisadmin dieser Praxis. Ernennen Sie "
                            "zuerst eine andere Person zum Praxisadmin."),
    accounts.DEACTIVATED: _l("Dieses Konto ist deaktiviert. Aktivieren Sie es zuerst wieder."),
    accounts.EMAIL_TAKEN: _l("Mit dieser E-Mail-Adresse gibt es schon ein Konto."),
}
LINK_INVALID = _l("Dieser Link ist nicht (mehr) gültig. Er ist abgelaufen, wurde schon "
                  "benutzt oder gehört zu keinem Konto. Bitten Sie Ihre Praxisadministration "
                  "um einen neuen Link.")


def _admin():
    if current_user.role != ADMIN:
        abort(403)
    return current_user.practice


def _page(status=200, invite_form=None, row=None, row_error=None, accounts_oob=False):
    """The Konten page, or for HTMX the piece that changed: the invite form (with the list
    out of band) or one account's row."""
    practice = current_user.practice
    context = dict(accounts=accounts.of_practice(practice), accounts_oob=accounts_oob,
                   # A new colleague is most often a doctor or an MFA, rarely another admin.
                   invite_form=invite_form or InviteForm(formdata=None, data={"role": DOCTOR}),
                   role_labels=ROLE_LABELS, roles=ROLES, me=current_user,
                   row_errors={row.id: str(row_error)} if row is not None and row_error else {})
    fragment = "auth/_invite_form.html"
    if row is not None:
        fragment = "auth/_account.html"
        context["account"] = row
    return render("auth/accounts.html", fragment, status=status, **context)


@bp.route("/praxis/konten")
@login_required
def accounts_page():
    _admin()
    return _page()


@bp.route("/praxis/konten", methods=["POST"])
@login_required
def invite():
    _admin()
    form = InviteForm()
    if not form.validate():
        return _page(422, invite_form=form)
    try:
        staff = accounts.invite(current_user, form.first_name.data, form.last_name.data,
                                form.email.data, form.role.data)
    except accounts.Refused as exc:
        form.email.errors = [str(REFUSALS[exc.reason])]
        return _page(409, invite_form=form)
    toast(_("Das Konto wurde angelegt. Die Einladung mit dem Link zum Passwort geht per "
            "E-Mail an %(email)s.", email=staff.email), "success")
    if not is_htmx():
        return redirect(url_for("auth.accounts_page"), 303)
    # A fresh form for the next colleague; the list with the new account out of band.
    return _page(201, accounts_oob=True)


def _row_action(staff_id, act, done):
    _admin()
    staff = load_in_practice(Staff, staff_id, current_user.practice)
    try:
        changed = act(staff)
    except accounts.Refused as exc:
        return _page(409, row=staff, row_error=REFUSALS[exc.reason])
    if changed is not False:
        toast(done, "success")
    if not is_htmx():
        return redirect(url_for("auth.accounts_page"), 303)
    return _page(row=staff)


@bp.route("/praxis/konten/<int:staff_id>/rolle", methods=["POST"])
@login_required
def change_role(staff_id):
    _admin()
    staff = load_in_practice(Staff, staff_id, current_user.practice)
    role = request.form.get("role", "")
    if role not in ROLES:
        return _page(422, row=staff, row_error=ROLE_MISSING)
    return _row_action(staff_id, lambda s: accounts.change_role(current_user, s, role),
                       _("Die Rolle wurde geändert. Das Konto muss sich neu anmelden."))


@bp.route("/praxis/konten/<int:staff_id>/deaktivieren", methods=["POST"])
@login_required
def deactivate(staff_id):
    return _row_action(staff_id, lambda s: accounts.deactivate(current_user, s),
                       _("Das Konto wurde deaktiviert und überall abgemeldet."))


@bp.route("/praxis/konten/<int:staff_id>/aktivieren", methods=["POST"])
@login_required
def reactivate(staff_id):
    return _row_action(staff_id, lambda s: accounts.reactivate(current_user, s),
                       _("Das Konto ist wieder aktiv."))


@bp.route("/praxis/konten/<int:staff_id>/passwort", methods=["POST"])
@login_required
def reset_password(staff_id):
    return _row_action(staff_id, lambda s: accounts.reset_password(current_user, s),
                       _("Das Passwort wurde zurückgesetzt. Ein Link zum neuen Passwort geht "
                         "per E-Mail hinaus."))


@bp.route("/konto/passwort/<token>", methods=["GET", "POST"])
def set_password(token):
    """The e-mail's link: choose a password, then log in. Only the POST uses the link."""
    link = accounts.link_for(token)
    if link is None:
        return error_page(404, str(LINK_INVALID))
    form = SetPasswordForm()
    status = 200
    if request.method == "POST":
        if form.validate() and accounts.set_password(link, form.password.data) is not None:
            session["password_set"] = True
            return redirect(url_for("auth.login"), 303)
        status = 422 if form.errors else 404
        if status == 404:  # used up by another request meanwhile
            return error_page(404, str(LINK_INVALID))
    return render("auth/set_password.html", "auth/_set_password_form.html", status=status,
                  form=form, token=token, email=link.staff.email)
