"""cancellations: what a deleted appointment leaves for its day's board (issue 11)

Revision ID: ca9ce11ed013
Revises: c0e5e7a11012
Create Date: 2026-11-29 00:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ca9ce11ed013'
down_revision = 'c0e5e7a11012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'cancellation',
        sa.Column('appointment_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('practice_id', sa.Integer(), nullable=False),
        sa.Column('contact_id', sa.Integer(), nullable=False),
        sa.Column('starts_at', sa.DateTime(), nullable=False),
        sa.Column('cancelled_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], name=op.f('fk_cancellation_contact_id_contact'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['practice_id'], ['practice.id'], name=op.f('fk_cancellation_practice_id_practice'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('appointment_id', name=op.f('pk_cancellation')),
    )
    with op.batch_alter_table('cancellation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cancellation_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cancellation_practice_id'), ['practice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cancellation_starts_at'), ['starts_at'], unique=False)


def downgrade():
    with op.batch_alter_table('cancellation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cancellation_starts_at'))
        batch_op.drop_index(batch_op.f('ix_cancellation_practice_id'))
        batch_op.drop_index(batch_op.f('ix_cancellation_contact_id'))
    op.drop_table('cancellation')
