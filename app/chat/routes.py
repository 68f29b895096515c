from flask import render_template
from flask_login import login_required

from app.chat import bp
from app.patients.services import get_appointment
from app.web import current_practice


@bp.route("/chat/<int:appointment_id>")
@login_required
def conversation(appointment_id):
    appointment = get_appointment(current_practice(), appointment_id)
    return render_template("chat/conversation.html", appointment=appointment)
