"""message language: e-mails and SMS in German or English per person (issue 11)

Revision ID: 1a6e55a9e014
Revises: ca9ce11ed013
Create Date: 2026-11-29 00:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1a6e55a9e014'
down_revision = 'ca9ce11ed013'
branch_labels = None
depends_on = None


def upgrade():
    for table in ('contact', 'participant'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('language', sa.String(length=2), server_default='de', nullable=False))


def downgrade():
    for table in ('participant', 'contact'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('language')
