"""participants

Revision ID: 959884e9da25
Revises: ec77a5259f66
Create Date: 2026-11-25 22:30:53.386135

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '959884e9da25'
down_revision = 'ec77a5259f66'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('participant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('practice_id', sa.Integer(), nullable=False),
    sa.Column('seat', sa.Integer(), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('mobile', sa.String(length=20), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('consent_at', sa.DateTime(), nullable=False),
    sa.Column('consent_by_id', sa.Integer(), nullable=True),
    sa.Column('consent_text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointment.id'], name=op.f('fk_participant_appointment_id_appointment'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['consent_by_id'], ['staff.id'], name=op.f('fk_participant_consent_by_id_staff'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['practice_id'], ['practice.id'], name=op.f('fk_participant_practice_id_practice'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant')),
    sa.UniqueConstraint('appointment_id', 'seat', name='uq_participant_appointment_seat'),
    sa.UniqueConstraint('token_hash', name=op.f('uq_participant_token_hash'))
    )
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participant_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_participant_practice_id'), ['practice_id'], unique=False)

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('participant_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_message_participant_id'), ['participant_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_outbox_message_participant_id_participant'), 'participant', ['participant_id'], ['id'], ondelete='CASCADE')



def downgrade():
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outbox_message_participant_id_participant'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_outbox_message_participant_id'))
        batch_op.drop_column('participant_id')

    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participant_practice_id'))
        batch_op.drop_index(batch_op.f('ix_participant_appointment_id'))

    op.drop_table('participant')
