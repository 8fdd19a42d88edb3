#![recursion_limit = "512"]
//! tenantry: the multi-tenant control plane for AI applications.
//! `main.rs` is the command line; everything it runs lives in these modules so tests build the same app.
pub mod auth;
pub mod billing;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod db;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod limits;

pub mod observe;
pub mod pagination;
pub mod proxies;
pub mod queue;
pub mod replicas;
pub mod settings;
pub mod startup;
pub mod state;
pub mod tenancy;
pub mod time;
pub mod usage;
pub mod verify;
pub mod webhooks;
