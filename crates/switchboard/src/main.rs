use clap::Parser;
use switchboard::config::{Cli, Command, OrgCommand};
use switchboard::{shutdown_signal, Application};
use tracing_subscriber::EnvFilter;

fn init_logs(json: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Logs go to stderr: stdout carries the machine-readable lines (org create, first key).
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            init_logs(config.log_format == "json");
            let app = Application::build(&config).await?;
            if let Some((org, key)) = &app.first_run_key {
                println!(
                    "{}",
                    serde_json::json!({"organization_id": org, "api_key": key, "note": "first start: default organization created; this key is shown only once"})
                );
            }
            tracing::info!(addr = %app.local_addr(), sip_port = app.sip_port(), "HTTP API and SIP listening");
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Bench(args) => {
            // Quiet by default: the figures go to stdout, progress to stderr.
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            switchboard::bench::run(args).await
        }
        Command::BenchCalls(args) => {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init();
            switchboard::bench_calls::run(args).await
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
    }
}
