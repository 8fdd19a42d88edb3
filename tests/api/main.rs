//! HTTP tests against the real server: one file per area of the contract.
mod cli;
mod durability;
mod encryption;
mod envelope;
mod events;
mod helpers;
mod isolation;
mod keys;
mod limits;
mod members;
mod provider_keys;
mod resolution;
mod restart;
mod settings;
mod sweep;
mod tenants;
mod usage;
