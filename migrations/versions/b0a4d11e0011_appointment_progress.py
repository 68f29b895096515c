"""appointment progress: the day's board, delay notice, consultation record (issue 11)

Revision ID: b0a4d11e0011
Revises: c4a7e1d2b3f9
Create Date: 2026-11-28 16:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b0a4d11e0011'
down_revision = 'c4a7e1d2b3f9'
branch_labels = None
depends_on = None

TIMES = ('link_opened_at', 'waiting_since', 'call_started_at', 'call_connected_at',
         'call_live_since', 'call_ended_at', 'delay_notice_at')


def upgrade():
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        for name in TIMES:
            batch_op.add_column(sa.Column(name, sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('call_seconds', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('call_members', sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column('delay_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('delay_notice', sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        for name in ('delay_notice', 'delay_minutes', 'call_members', 'call_seconds') + TIMES[::-1]:
            batch_op.drop_column(name)
