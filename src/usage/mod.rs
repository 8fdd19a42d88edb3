//! Metered usage: exact money, pricing, and (with the usage issue) ingest, rollups and stats.
pub mod money;
