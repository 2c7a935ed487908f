//! Integration tests of the HTTP API against the real server on port 0. Every scenario runs on
//! SQLite and on PostgreSQL: `both!(name)` makes the tests `<module>::name::sqlite` and
//! `<module>::name::postgres` (filter with `cargo test --test api postgres`).

#[path = "api/common.rs"]
mod common;

#[path = "api/auth.rs"]
mod auth;
#[path = "api/calls_create.rs"]
mod calls_create;
#[path = "api/calls_get.rs"]
mod calls_get;
#[path = "api/calls_list.rs"]
mod calls_list;
#[path = "api/cli.rs"]
mod cli;
#[path = "api/control.rs"]
mod control;
#[path = "api/isolation.rs"]
mod isolation;
#[path = "api/misc.rs"]
mod misc;
#[path = "api/recording.rs"]
mod recording;
#[path = "api/replicas.rs"]
mod replicas;
#[path = "api/resources.rs"]
mod resources;
#[path = "api/webhooks.rs"]
mod webhooks;
