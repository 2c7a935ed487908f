use clap::Parser;
use switchboard::config::{Cli, Command, OrgCommand, UserCommand};
use switchboard::{shutdown_signal, Application};
use tracing_subscriber::EnvFilter;

// glibc's malloc showed up in profiles of the API (malloc_consolidate, frees across threads);
// mimalloc's per-thread heaps cost less for the many small JSON and row allocations. The
// `system-alloc` feature keeps the system allocator instead: heap profilers that hook malloc
// (heaptrack) see every allocation then, and the soak compares the two (BENCHMARKS.md
// "Reliability": resident memory after warm-up). mimalloc is built without its transparent
// huge pages request (`no_thp` in Cargo.toml); where the kernel gives huge pages to every
// mapping (THP "always"), `MIMALLOC_ALLOW_THP=0` in the environment turns them off for the
// process.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Colour codes only for a person at a terminal: a pipe, a file or a log collector gets
/// plain text (escape sequences would otherwise end up in files and JSON pipelines).
fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

fn init_logs(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Logs go to stderr: stdout carries the machine-readable lines (org create, first key).
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_is_terminal())
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// Benchmarks are quiet by default: the figures go to stdout, warnings and progress to stderr.
fn bench_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = match &cli.command {
        // The bench's client side is one thread, like a load generator; it starts the server
        // on a multi-threaded runtime of its own.
        Command::Bench(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => {
            init_logs(config.log_format == "json");
            let app = Application::build(&config).await?;
            if let Some((org, key)) = &app.first_run_key {
                let mut line = serde_json::json!({"organization_id": org, "api_key": key, "note": "first start: default organization created; this key is shown only once"});
                // The dashboard's first owner, beside the key (issue 12).
                if let Some((email, password)) = &app.first_run_login {
                    line["dashboard"] = serde_json::json!({"url": format!("{}/login", app.dashboard_base()), "email": email, "password": password, "role": "owner"});
                    line["note"] = "first start: default organization and its owner created; the key and the password are shown only once".into();
                }
                println!("{line}");
            }
            tracing::info!(addr = %app.local_addr(), sip_port = app.sip_port(), "HTTP API and SIP listening");
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Bench(args) => {
            bench_logs();
            switchboard::bench::run(args).await
        }
        Command::BenchCalls(args) => {
            bench_logs();
            switchboard::bench_calls::run(args).await
        }
        Command::BenchAgent(args) => {
            bench_logs();
            switchboard::bench_agent::run(args).await
        }
        Command::Org {
            command: OrgCommand::Create { name, store },
        } => {
            init_logs(false);
            let name = switchboard_domain::parse_name("name", &name, 200)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            std::fs::create_dir_all(&store.data_dir)?;
            let s = switchboard_store::Store::connect(&store.url(), 2).await?;
            let (org, key) = s.create_org(&name).await?;
            println!(
                "{}",
                serde_json::json!({"organization_id": org.id, "api_key": key})
            );
            s.close().await;
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    org,
                    role,
                    password_stdin,
                    store,
                },
        } => {
            init_logs(false);
            switchboard::user_create(&email, &org, &role, password_stdin, &store).await
        }
    }
}
