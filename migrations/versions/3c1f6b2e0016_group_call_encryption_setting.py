"""practice setting: browsers without frame encryption in group calls (issue 13)

Revision ID: 3c1f6b2e0016
Revises: 2b0e5a1e0015
Create Date: 2026-11-29 03:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3c1f6b2e0016'
down_revision = '2b0e5a1e0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('practice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_unencrypted_group_calls', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('practice', schema=None) as batch_op:
        batch_op.drop_column('allow_unencrypted_group_calls')
