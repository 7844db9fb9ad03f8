//! End-to-end tests: queries through [`Engine`](super::Engine) over an in-memory store,
//! with expectations computed by hand.

mod dashboards;
mod functions;
mod operators;
mod selectors;
