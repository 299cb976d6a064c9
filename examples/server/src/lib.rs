#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod context;
pub mod customer;
pub mod error;
pub mod events;
pub mod extract;
pub mod headers;
pub mod i18n;
pub mod listener;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod process;
pub mod public_url;
pub mod ratelimit;
mod reload;
pub mod request;
pub mod respond;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod timeouts;
pub mod tools;
pub mod watch;
pub mod webhooks;
