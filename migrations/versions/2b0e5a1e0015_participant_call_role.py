"""participant call role: why a further person takes part (issue 11)

Revision ID: 2b0e5a1e0015
Revises: 1a6e55a9e014
Create Date: 2026-11-29 01:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2b0e5a1e0015'
down_revision = '1a6e55a9e014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_role', sa.String(length=20), server_default='other', nullable=False))


def downgrade():
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.drop_column('call_role')
