//! The fault proxy as a process of its own, for benchmarks that emulate a network without
//! counting the proxy's CPU time as the client's.
//!
//! `fault-proxy UPSTREAM DELAY_US` listens on a free loopback port, prints
//! `listening on 127.0.0.1:PORT`, forwards every connection to `UPSTREAM` (`HOST:PORT`)
//! with `DELAY_US` microseconds added to every chunk each way, and exits when its stdin
//! closes.

#![expect(
    clippy::print_stdout,
    reason = "the listening address is the program's output"
)]

use std::io::Read as _;
use std::time::Duration;

use pci_vault_testkit::proxy::FaultProxy;

fn main() {
    let mut args = std::env::args().skip(1);
    let parsed = (args.next(), args.next(), args.next());
    let (Some(Ok(upstream)), Some(Ok(delay)), None) = (
        parsed.0.map(|a| a.parse()),
        parsed.1.map(|a| a.parse()),
        parsed.2,
    ) else {
        eprintln!("usage: fault-proxy UPSTREAM_HOST:PORT DELAY_MICROSECONDS");
        std::process::exit(2);
    };
    let delay = Duration::from_micros(delay);
    let proxy = FaultProxy::start(upstream);
    proxy.set_delay(delay);
    println!("listening on {}", proxy.addr());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
