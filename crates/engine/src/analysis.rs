//! The post-call analysis worker: drains the durable `analysis_queue` (a row is written with
//! the final status of every call that had a conversation, see `call/mod.rs`), asks the LLM
//! (`switchboard_agent::analysis`) and stores the result on the call with `call.analyzed`.
//!
//! It never touches a call's status: the call is final before its row exists. A failed LLM
//! request is retried on `analysis_retry_schedule`; after the last retry, or at once when the
//! model's answers do not match the schema twice, the failure itself is recorded
//! (`post_call_analysis.status = "failed"` with the reason), never an invented result.

use crate::engine::Inner;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use switchboard_agent::analysis::{analyze, AnalysisError, AnalysisSpec};
use switchboard_domain::Timestamp;
use switchboard_store::ClaimedAnalysis;

/// A claim lasts this long: longer than two LLM requests, so a slow model is not analysed twice.
const LEASE_MICROS: i64 = 180_000_000;

pub(crate) async fn worker(inner: Arc<Inner>) {
    let worker = format!("{}/analysis", inner.engine_id);
    if let Err(e) = inner.store.release_analysis_claims(&worker).await {
        tracing::warn!(error = %e, "could not release this node's earlier analysis claims");
    }
    let mut stop = inner.stopping.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        match inner.store.claim_analyses(&worker, 4, LEASE_MICROS).await {
            Ok(claimed) => {
                // One at a time per claim batch: analysis is background work and must not
                // compete with live calls for the LLM's rate limit.
                for c in claimed {
                    run_one(&inner, c).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming post-call analyses failed"),
        }
        tokio::select! {
            _ = inner.analysis_wake.notified() => {}
            _ = tokio::time::sleep(inner.cfg.poll_interval.max(Duration::from_millis(500))) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn run_one(inner: &Inner, job: ClaimedAnalysis) {
    let id = job.call_id;
    let store = &inner.store;
    let call = match store.get_call(job.org_id, id, true).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(call_id = %id, error = %e, "analysis: call unreadable; retried later");
            retry(inner, &job, &e.to_string()).await;
            return;
        }
    };
    let agent = match call.agent_id {
        Some(a) => store.get_agent(call.org_id, a).await.ok(),
        None => None,
    };
    let transcript = call
        .details
        .as_ref()
        .and_then(|d| d.transcript.clone())
        .unwrap_or_default();
    let providers = inner.cfg.agent.as_ref();
    let Some(llm) = providers.and_then(|p| p.llm.clone()) else {
        record_failure(inner, &job, "no LLM is configured (--llm-url)", None).await;
        return;
    };
    let model = agent
        .as_ref()
        .and_then(|a| a.llm_model.clone())
        .filter(|m| !m.trim().is_empty())
        .or_else(|| providers.map(|p| p.llm_model.clone()))
        .unwrap_or_default();
    let spec = AnalysisSpec::from_agent(agent.as_ref());
    match analyze(llm.as_ref(), &model, &spec, &transcript).await {
        Ok(a) => {
            let call_success = a.call_success;
            let res = store
                .record_call_analysis(id, call_success, move |d| {
                    d.call_description = Some(a.call_description);
                    d.structured_data_results = a.structured_data;
                    d.custom_analysis = a.custom_analysis;
                    d.post_call_analysis = Some(a.post_call_analysis);
                })
                .await;
            match res {
                Ok(()) => tracing::info!(call_id = %id, "post-call analysis stored"),
                Err(e) => retry(inner, &job, &e.to_string()).await,
            }
        }
        Err(AnalysisError::Invalid(why)) => {
            record_failure(inner, &job, &why, Some(&model)).await;
        }
        Err(AnalysisError::Provider(e)) => {
            let why = e.to_string();
            if (job.attempts as usize) > inner.cfg.analysis_retry_schedule.len() {
                record_failure(inner, &job, &why, Some(&model)).await;
            } else {
                tracing::info!(call_id = %id, attempt = job.attempts, error = %why, "post-call analysis failed; will retry");
                retry(inner, &job, &why).await;
            }
        }
    }
}

/// The next attempt after `job.attempts` failures, on the schedule (its last delay repeats
/// for store errors, which do not count against the schedule's end).
async fn retry(inner: &Inner, job: &ClaimedAnalysis, why: &str) {
    let sched = &inner.cfg.analysis_retry_schedule;
    let i = (job.attempts.max(1) as usize - 1).min(sched.len().saturating_sub(1));
    let delay = sched.get(i).copied().unwrap_or(Duration::from_secs(60));
    let at = Timestamp(Timestamp::now().micros() + delay.as_micros() as i64);
    if let Err(e) = inner.store.retry_analysis(job.call_id, at, why).await {
        // The lease runs out and the row is claimed again: nothing is lost.
        tracing::warn!(call_id = %job.call_id, error = %e, "could not reschedule the analysis");
    }
}

async fn record_failure(inner: &Inner, job: &ClaimedAnalysis, why: &str, model: Option<&str>) {
    tracing::warn!(call_id = %job.call_id, error = %why, "post-call analysis failed for good");
    let failed = json!({
        "status": "failed",
        "error": why,
        "model": model,
        "attempts": job.attempts,
        "failed_at": Timestamp::now(),
    });
    let res = inner
        .store
        .record_call_analysis(job.call_id, None, move |d| {
            d.post_call_analysis = Some(failed);
        })
        .await;
    if let Err(e) = res {
        retry(inner, job, &e.to_string()).await;
    }
}
