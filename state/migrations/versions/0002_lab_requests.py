"""lab requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:46:52.522170
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lab_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('oracle', sa.String(length=100), nullable=False),
    sa.Column('formula', sa.String(length=200), nullable=False),
    sa.Column('composition', sa.JSON(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decision', sa.JSON(), nullable=False),
    sa.Column('iteration', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lab_requests', schema=None) as batch_op:
        batch_op.create_index('ix_lab_requests_campaign_status', ['campaign_id', 'status'], unique=False)

    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('method', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('request_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_measurements_request', 'lab_requests', ['request_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.drop_constraint('fk_measurements_request', type_='foreignkey')
        batch_op.drop_column('request_id')
        batch_op.drop_column('method')

    with op.batch_alter_table('lab_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_lab_requests_campaign_status')

    op.drop_table('lab_requests')
