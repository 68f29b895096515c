"""audit entries (append-only: UPDATE refused by a trigger)

Revision ID: f1e2d3c4b5a6
Revises: a11e0d17c0de
Create Date: 2026-11-28 17:10:00

"""
from alembic import op
import sqlalchemy as sa

# As app/auth/audit.py creates them with create_all; written out, as a migration must not
# change when the code does.
SQLITE_TRIGGER = ("CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry "
                  "BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END")
PG_FUNCTION = ("CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$ "
               "BEGIN RAISE EXCEPTION 'audit_entry is append-only'; END $$ LANGUAGE plpgsql")
PG_TRIGGER = ("CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry "
              "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()")


# revision identifiers, used by Alembic.
revision = 'f1e2d3c4b5a6'
down_revision = 'a11e0d17c0de'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('practice_id', sa.Integer(), nullable=False),
    sa.Column('actor_type', sa.String(length=10), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=20), nullable=True),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_audit_entry_practice_created', ['practice_id', 'created_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry')
        op.execute('DROP FUNCTION IF EXISTS audit_entry_append_only()')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entry_practice_created')
        batch_op.drop_index(batch_op.f('ix_audit_entry_created_at'))
    op.drop_table('audit_entry')
