"""chat text encrypted at rest

Revision ID: c4a7e1d2b3f9
Revises: f1e2d3c4b5a6
Create Date: 2026-11-28 17:40:00

"""
import base64
import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography.fernet import Fernet
from flask import current_app


# revision identifiers, used by Alembic.
revision = 'c4a7e1d2b3f9'
down_revision = 'f1e2d3c4b5a6'
branch_labels = None
depends_on = None


def _fernet():
    # As app/invitations/crypto.py derives the chat's key; written out, as a migration
    # must not change when the code does.
    digest = hashlib.sha256(b"sprechzimmer-chat:" + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def upgrade():
    with op.batch_alter_table('chat_message', schema=None) as batch_op:
        batch_op.alter_column('text', existing_type=sa.String(length=2000), type_=sa.Text(),
                              existing_nullable=False)
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, text FROM chat_message")).all()
    if rows:
        fernet = _fernet()
        bind.execute(sa.text("UPDATE chat_message SET text = :sealed WHERE id = :id"),
                     [{"id": row.id, "sealed": fernet.encrypt(row.text.encode()).decode("ascii")} for row in rows])


def downgrade():
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, text FROM chat_message")).all()
    if rows:
        fernet = _fernet()
        bind.execute(sa.text("UPDATE chat_message SET text = :plain WHERE id = :id"),
                     [{"id": row.id, "plain": fernet.decrypt(row.text.encode("ascii")).decode()} for row in rows])
    with op.batch_alter_table('chat_message', schema=None) as batch_op:
        batch_op.alter_column('text', existing_type=sa.Text(), type_=sa.String(length=2000),
                              existing_nullable=False)
