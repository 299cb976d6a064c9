#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod customer;
pub mod error;
pub mod events;
pub mod extract;
pub mod headers;
pub mod i18n;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod ratelimit;
pub mod request;
pub mod respond;
pub mod server;
pub mod state;
