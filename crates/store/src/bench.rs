//! Support for `switchboard bench`: bulk seeding of realistic calls, and the store's own
//! statements run raw (no row decoding) so the benchmark can show what the database engine
//! alone costs beside what the store and the server add.

use crate::calls::{get_call_sql, list_calls_sql};
use crate::read::Params;
use crate::{Backend, Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Executor, Row};
use switchboard_domain::*;

/// What to seed.
#[derive(Debug, Clone)]
pub struct BenchSeedConfig {
    pub calls: u64,
    pub orgs: u32,
    pub agents_per_org: u32,
    pub numbers_per_org: u32,
    pub contacts_per_org: u32,
    /// Calls spread over this many days before now.
    pub days: u32,
}

impl Default for BenchSeedConfig {
    fn default() -> Self {
        Self {
            calls: 1_000_000,
            orgs: 4,
            agents_per_org: 20,
            numbers_per_org: 20,
            contacts_per_org: 5_000,
            days: 365,
        }
    }
}

/// One seeded organization: its key and samples of what it holds, for building requests.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchOrg {
    pub org_id: OrgId,
    pub api_key: String,
    pub agents: Vec<AgentId>,
    /// The customer numbers of the sampled calls (each has calls), for by-number reads.
    pub sample_numbers: Vec<String>,
    /// Up to 2,000 call ids of this organization, for by-id reads.
    pub sample_calls: Vec<CallId>,
}

const STATUSES: &[(&str, u32)] = &[
    ("completed", 70),
    ("no_answer", 12),
    ("failed", 10),
    ("transferred", 8),
];

fn pick_status(r: u32) -> &'static str {
    let mut acc = 0;
    for (s, w) in STATUSES {
        acc += w;
        if r < acc {
            return s;
        }
    }
    "completed"
}

impl Store {
    /// Seeds organizations (with keys), agents, phone numbers, contacts, and `calls` calls
    /// spread evenly over the organizations and `days` days, in multi-row INSERTs inside big
    /// transactions. All values are generated here (UUIDs, numbers, fixed words), never taken
    /// from a client, so they are written as literals: one statement carries 1,000 rows.
    pub async fn bench_seed(
        &self,
        cfg: &BenchSeedConfig,
        mut progress: impl FnMut(u64),
    ) -> Result<Vec<BenchOrg>, StoreError> {
        let mut rng = StdRng::seed_from_u64(20_240_601);
        let now = Timestamp::now().micros();
        let span = cfg.days as i64 * 86_400_000_000;
        let t0 = now - span;
        let mut orgs = Vec::new();
        for o in 0..cfg.orgs {
            let (org, key) = self.create_org(&format!("bench-{o}")).await?;
            let org_s = org.id.to_string();
            let mut tx = self.pool.begin().await?;
            let mut agents = Vec::new();
            for a in 0..cfg.agents_per_org {
                let id = AgentId::new();
                sqlx::raw_sql(
                    format!(
                        "INSERT INTO agents (id, org_id, name, system_prompt, voice, language, created_at, updated_at) \
                         VALUES ('{id}', '{org_s}', 'agent-{a}', 'You are a helpful agent.', 'en', 'en-US', {t0}, {t0})"
                    )
                    .as_str(),
                )
                .execute(&mut *tx)
                .await?;
                agents.push(id);
            }
            let mut numbers = Vec::new();
            for n in 0..cfg.numbers_per_org {
                let id = PhoneNumberId::new();
                let e164 = format!("+1415{o:02}{n:05}");
                let agent = agents[n as usize % agents.len().max(1)];
                sqlx::raw_sql(
                    format!(
                        "INSERT INTO phone_numbers (id, org_id, phone_number, agent_id, created_at) \
                         VALUES ('{id}', '{org_s}', '{e164}', '{agent}', {t0})"
                    )
                    .as_str(),
                )
                .execute(&mut *tx)
                .await?;
                numbers.push((id, e164));
            }
            let mut contacts = Vec::new();
            for chunk in (0..cfg.contacts_per_org).collect::<Vec<_>>().chunks(1000) {
                let mut values = Vec::with_capacity(chunk.len());
                for c in chunk {
                    let id = ContactId::new();
                    let e164 = format!("+1212{o:02}{c:05}");
                    values.push(format!(
                        "('{id}', '{org_s}', '{e164}', 'call', 'First{c}', 'Last{c}', {t0})"
                    ));
                    contacts.push((id, e164));
                }
                sqlx::raw_sql(
                    format!(
                        "INSERT INTO contacts (id, org_id, identifier, contact_type, first_name, last_name, created_at) VALUES {}",
                        values.join(",")
                    )
                    .as_str(),
                )
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            orgs.push((org.id, key, agents, numbers, contacts, Vec::new()));
        }

        // Calls: round-robin over the organizations, created_at rising with the insert order
        // (as in production, where seq and created_at grow together), with jitter.
        let step = span / cfg.calls.max(1) as i64;
        let mut done = 0u64;
        let batch_rows = 1000u64;
        let tx_rows = 50_000u64;
        while done < cfg.calls {
            let mut tx = self.pool.begin().await?;
            let tx_end = (done + tx_rows).min(cfg.calls);
            while done < tx_end {
                let end = (done + batch_rows).min(tx_end);
                let mut values = Vec::with_capacity((end - done) as usize);
                for i in done..end {
                    let (org_id, _, agents, numbers, contacts, samples) =
                        &mut orgs[(i % cfg.orgs as u64) as usize];
                    let id = CallId::new();
                    let created = t0 + i as i64 * step + rng.gen_range(0..step.max(1));
                    let agent = agents[rng.gen_range(0..agents.len())];
                    let (num_id, num) = &numbers[rng.gen_range(0..numbers.len())];
                    let (contact_id, client) = &contacts[rng.gen_range(0..contacts.len())];
                    if samples.len() < 2000 && rng.gen_ratio(1, 50) {
                        samples.push((id, client.clone()));
                    }
                    let outbound = rng.gen_ratio(3, 4);
                    let call_type = if outbound { "outbound" } else { "inbound" };
                    let status = pick_status(rng.gen_range(0..100));
                    let ring = rng.gen_range(2_000_000..25_000_000i64);
                    let (started, ended, duration, reason, sip) = match status {
                        "completed" | "transferred" => {
                            let d = rng.gen_range(5..900i64);
                            let s = created + ring;
                            (
                                s.to_string(),
                                (s + d * 1_000_000).to_string(),
                                d.to_string(),
                                "'hangup'",
                                200,
                            )
                        }
                        "no_answer" => (
                            "NULL".into(),
                            (created + 30_000_000).to_string(),
                            "NULL".into(),
                            "'no_answer'",
                            480,
                        ),
                        _ => (
                            "NULL".into(),
                            (created + ring).to_string(),
                            "NULL".into(),
                            "'busy'",
                            486,
                        ),
                    };
                    let start_key = if started == "NULL" {
                        created.to_string()
                    } else {
                        started.clone()
                    };
                    values.push(format!(
                        "('{id}','{org_id}','{agent}','{contact_id}','{num_id}',NULL,'{call_type}','{status}','{client}','{num}',\
                         NULL,'{{\"source\":\"bench\"}}',0,{created},{started},{ended},{start_key},{ended},{duration},{reason},{sip},\
                         {vm},{ok},NULL,NULL,NULL,{ended})",
                        vm = if status == "completed" { (rng.gen_ratio(1, 10) as i64).to_string() } else { "NULL".into() },
                        ok = if status == "completed" { (rng.gen_ratio(4, 5) as i64).to_string() } else { "NULL".into() },
                    ));
                }
                sqlx::raw_sql(
                    format!(
                        "INSERT INTO calls (id, org_id, agent_id, contact_id, phone_number_id, campaign_id, call_type, status, \
                         client_number, agent_phone_number, context, metadata, user_speaks_first, created_at, started_at, \
                         ended_at, start_key, end_key, duration_seconds, end_reason, sip_code, went_to_voicemail, call_success, \
                         ring_timeout_seconds, recording, details, updated_at) VALUES {}",
                        values.join(",")
                    )
                    .as_str(),
                )
                .execute(&mut *tx)
                .await?;
                done = end;
            }
            tx.commit().await?;
            progress(done);
        }
        Ok(orgs
            .into_iter()
            .map(|(org_id, api_key, agents, _, _, samples)| BenchOrg {
                org_id,
                api_key,
                agents,
                sample_numbers: samples.iter().map(|s| s.1.clone()).collect(),
                sample_calls: samples.into_iter().map(|s| s.0).collect(),
            })
            .collect())
    }

    /// Refreshes the planner's statistics (after a bulk load the planner would otherwise
    /// guess).
    ///
    /// On SQLite only the per-index summary (`sqlite_stat1`) is kept. The bundled SQLite is
    /// built with STAT4, whose per-value samples make the planner mark a statement's
    /// parameters as plan-sensitive; binding such a parameter again expires the statement, so
    /// every execution of a cached statement is compiled anew (`sqlite3Reprepare`, about
    /// 0.06 ms, as long as the query itself). The store's statements are all index-driven
    /// (org first, then the sort key), and their plans are the same without the samples.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        self.pool.execute("ANALYZE").await?;
        if self.backend == Backend::Sqlite {
            let _write = self.write_gate().await;
            let mut conn = self.pool.acquire().await?;
            let stat4: Option<(String,)> =
                sqlx::query_as("SELECT name FROM sqlite_schema WHERE name = 'sqlite_stat4'")
                    .fetch_optional(&mut *conn)
                    .await?;
            if stat4.is_some() {
                conn.execute("DELETE FROM sqlite_stat4").await?;
            }
            // A connection reads statistics with the schema: this one now, new ones on open
            // (the benchmark opens its server's after this).
            conn.execute("ANALYZE sqlite_schema").await?;
        }
        Ok(())
    }

    /// Number of calls stored (all organizations).
    pub async fn bench_call_count(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM calls")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get::<i64, _>("n")?)
    }

    /// Runs exactly the statement `list_calls` runs and fetches its rows without decoding
    /// them: the database engine's (and its driver's) share of a list request. On SQLite,
    /// SQLite itself on the calling thread; on PostgreSQL, the statement over the wire.
    pub async fn bench_raw_list_calls(
        &self,
        org: OrgId,
        q: &CallListQuery,
    ) -> Result<usize, StoreError> {
        let (sql, p) = list_calls_sql(org, q);
        self.bench_raw(&sql, &p).await
    }

    /// Runs exactly the statement `get_call` runs, without decoding.
    pub async fn bench_raw_get_call(
        &self,
        org: OrgId,
        id: CallId,
        with_details: bool,
    ) -> Result<bool, StoreError> {
        let mut p = Params::new();
        p.push_str(org.to_string());
        p.push_str(id.to_string());
        Ok(self.bench_raw(&get_call_sql(with_details), &p).await? > 0)
    }

    async fn bench_raw(&self, sql: &str, p: &Params) -> Result<usize, StoreError> {
        match &self.readers {
            Some(r) => r.raw(sql, p),
            None => Ok(sqlx::query_with(sql, p.any())
                .fetch_all(&self.pool)
                .await?
                .len()),
        }
    }

    /// The statement `list_calls` runs for a query, and the engine's plan for it
    /// (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL).
    pub async fn bench_explain_list_calls(
        &self,
        org: OrgId,
        q: &CallListQuery,
    ) -> Result<(String, Vec<String>), StoreError> {
        let (sql, p) = list_calls_sql(org, q);
        let explain = match self.backend {
            Backend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
            Backend::Postgres => format!("EXPLAIN (ANALYZE, COSTS OFF) {sql}"),
        };
        let rows = sqlx::query_with(&explain, p.any())
            .fetch_all(&self.pool)
            .await?;
        let mut plan = Vec::new();
        for r in rows {
            let line = match self.backend {
                Backend::Sqlite => r.try_get::<String, _>("detail")?,
                Backend::Postgres => r.try_get::<String, _>(0)?,
            };
            plan.push(line);
        }
        Ok((sql, plan))
    }
}
