//! HTTP tests against the real server: one file per area of the contract.
mod cli;
mod envelope;
mod helpers;
mod isolation;
mod keys;
mod members;
mod resolution;
mod restart;
mod sweep;
mod tenants;
