//! tenantry: the multi-tenant control plane for AI applications.
//! `main.rs` is the command line; everything it runs lives in these modules so tests build the same app.
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod pagination;
pub mod startup;
pub mod state;
pub mod tenancy;
pub mod time;
