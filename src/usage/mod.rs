//! Metered usage: exact money, pricing, validated events, the group-commit writer, daily
//! rollups with in-memory day and month windows, and the reads built on them.
pub mod counters;
pub mod crossings;
pub mod event;
pub mod export;
pub mod export_pg;
pub mod model;
pub mod money;
pub mod pg_reads;
pub mod pg_store;
pub mod pg_writer;
pub mod price_import;
pub mod priced;
pub mod pricing;
pub mod reads;
pub mod retention;
pub mod rollup;
pub mod service;
pub mod store;
pub mod writer;
