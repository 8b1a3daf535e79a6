"""force labels (energy, forces, stress per structure) for the campaign's own potentials

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("oracle", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("structure", sa.Text(), nullable=False),
        sa.Column("n_atoms", sa.Integer(), nullable=False),
        sa.Column("energy_eV", sa.Float(), nullable=False),
        sa.Column("forces_eV_per_A", sa.JSON(), nullable=False),
        sa.Column("stress_GPa", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("evaluation_id", "position", name="uq_label_position"),
    )
    op.create_index("ix_labels_campaign_oracle", "labels", ["campaign_id", "oracle"])


def downgrade() -> None:
    op.drop_index("ix_labels_campaign_oracle", table_name="labels")
    op.drop_table("labels")
