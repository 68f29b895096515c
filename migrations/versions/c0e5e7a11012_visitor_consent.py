"""visitor consent: the patient's and guests' own consent on the device check (issue 12)

Revision ID: c0e5e7a11012
Revises: c2d3e4f5a6b7
Create Date: 2026-11-28 20:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c0e5e7a11012'
down_revision = 'c2d3e4f5a6b7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'visitor_consent',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('appointment_id', sa.Integer(), nullable=False),
        sa.Column('participant_id', sa.Integer(), nullable=True),
        sa.Column('wording', sa.Integer(), nullable=False),
        sa.Column('given_at', sa.DateTime(), nullable=False),
        sa.Column('withdrawn_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['appointment_id'], ['appointment.id'], name=op.f('fk_visitor_consent_appointment_id_appointment'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_visitor_consent_participant_id_participant'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_visitor_consent')),
    )
    with op.batch_alter_table('visitor_consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visitor_consent_appointment_id'), ['appointment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visitor_consent_participant_id'), ['participant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('visitor_consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visitor_consent_participant_id'))
        batch_op.drop_index(batch_op.f('ix_visitor_consent_appointment_id'))
    op.drop_table('visitor_consent')
