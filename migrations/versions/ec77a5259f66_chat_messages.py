"""chat messages

Revision ID: ec77a5259f66
Revises: cd3d36706ce7
Create Date: 2026-11-25 21:48:04.736339

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ec77a5259f66'
down_revision = 'cd3d36706ce7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('chat_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=10), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.String(length=2000), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('read_by_staff_at', sa.DateTime(), nullable=True),
    sa.Column('read_by_patient_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("sender IN ('staff', 'patient')", name=op.f('ck_chat_message_sender')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointment.id'], name=op.f('fk_chat_message_appointment_id_appointment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_chat_message_staff_id_staff'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_message'))
    )
    with op.batch_alter_table('chat_message', schema=None) as batch_op:
        batch_op.create_index('ix_chat_message_appointment_unread', ['appointment_id', 'sender', 'read_by_staff_at'], unique=False)



def downgrade():
    with op.batch_alter_table('chat_message', schema=None) as batch_op:
        batch_op.drop_index('ix_chat_message_appointment_unread')

    op.drop_table('chat_message')
