"""appointment changes and reminders (issue 11)

Revision ID: a11e0d17c0de
Revises: 5948c7ddb999
Create Date: 2026-11-28 16:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a11e0d17c0de'
down_revision = '5948c7ddb999'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('practice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remind_day_before', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column('remind_shortly_before', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.add_column(sa.Column('phone', sa.String(length=30), nullable=True))
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ics_sequence', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('link_sealed', sa.Text(), nullable=True))
    # The defaults fill the existing rows; new ones get theirs from the models.
    with op.batch_alter_table('practice', schema=None) as batch_op:
        batch_op.alter_column('remind_day_before', server_default=None)
        batch_op.alter_column('remind_shortly_before', server_default=None)
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        batch_op.alter_column('ics_sequence', server_default=None)
    op.create_table('reminder_mark',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointment.id'], name=op.f('fk_reminder_mark_appointment_id_appointment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminder_mark')),
    sa.UniqueConstraint('appointment_id', 'kind', name='uq_reminder_appointment_kind')
    )


def downgrade():
    op.drop_table('reminder_mark')
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        batch_op.drop_column('link_sealed')
        batch_op.drop_column('ics_sequence')
    with op.batch_alter_table('practice', schema=None) as batch_op:
        batch_op.drop_column('phone')
        batch_op.drop_column('remind_shortly_before')
        batch_op.drop_column('remind_day_before')
