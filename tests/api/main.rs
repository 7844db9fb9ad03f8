//! API tests against real PostgreSQL and Redis servers; one binary so it compiles once.

mod actuator;
mod admin;
mod auth;
mod cli;
mod coupons;
mod database;
mod front;
mod helpers;
mod issues;
mod lab;
mod layout;
mod load;
mod monitor;
mod my_coupons;
mod pool;
mod protocol;
mod proxy;
mod schema;
mod search;
mod seed;
mod stop;
mod storefront;
mod strategies;
