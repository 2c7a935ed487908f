//! Webhook delivery: a worker that claims due deliveries from the store's outbox (leases,
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL), signs each event the Standard Webhooks way and
//! POSTs it, records the attempt, and schedules retries with backoff and jitter. Also the
//! SSRF guard shared with the API, and the event log's retention task.

pub mod sign;
pub mod ssrf;
mod worker;

pub use worker::{parse_duration, parse_schedule, WebhookConfig, WebhookWorker};
