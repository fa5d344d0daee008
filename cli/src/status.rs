//! `nodewright status`: the fleet view of `simulate --status-every`
//! ([`nodewright_core::status`]) over a live cluster and its claims table: one row per node of
//! ours, claims in flight and disrupting, totals; refreshed with `--watch`.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use nodewright_core::assemble::split_pods;
use nodewright_core::ports::{ClaimStore, Cluster};
use nodewright_core::status::{FleetStatus, fleet_status, render};

use crate::live::{ConnectArgs, Live};
use crate::plan::{Output, finish};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nodewright status --cluster prod
  nodewright status --cluster prod --watch 10
  nodewright status --cluster dev --kubeconfig ~/.kube/dev --table nodewright-dev-claims -o json")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Refresh every SECS seconds (default 5) until interrupted.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "5")]
    watch: Option<u64>,

    /// How to print the view (with --watch, JSON is one document a line).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.watch == Some(0) {
        anyhow::bail!("--watch 0: the refresh interval must be at least a second");
    }
    crate::live::runtime()?.block_on(async {
        let live = Live::connect(&args.connect).await?;
        // Clearing the screen only makes sense on a terminal; piped, snapshots follow each other.
        let clear = args.watch.is_some() && io::stdout().is_terminal();
        loop {
            let status = read(&live).await.map_err(|e| live.explain(e))?;
            let mut out = io::stdout().lock();
            let written = write(
                &mut out,
                &live.name,
                &status,
                args.output,
                args.watch.is_some(),
                clear,
            );
            finish(written, "writing the status")?;
            match args.watch {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
                None => return Ok(()),
            }
        }
    })
}

/// One snapshot: the live claims and the nodes with their pods, now.
async fn read(live: &Live) -> nodewright_core::ports::PortResult<FleetStatus> {
    let claims = live.store.list_live().await?;
    let nodes = split_pods(
        live.cluster.list_nodes().await?,
        live.cluster.list_bound_pods().await?,
    )
    .nodes;
    Ok(fleet_status(&nodes, &claims, live.clock.now()))
}

fn write(
    out: &mut impl Write,
    cluster: &str,
    status: &FleetStatus,
    output: Output,
    watching: bool,
    clear: bool,
) -> io::Result<()> {
    match output {
        Output::Json if watching => {
            serde_json::to_writer(&mut *out, status)?;
            writeln!(out)
        }
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, status)?;
            writeln!(out)
        }
        Output::Table => {
            if clear {
                // Home the cursor and clear the screen (ANSI), as `watch` does.
                write!(out, "\x1b[H\x1b[2J")?;
            }
            if watching {
                let now = nodewright_core::config_status::rfc3339(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64),
                );
                writeln!(out, "cluster {cluster} at {now}")?;
            }
            write!(out, "{}", render(status))?;
            if watching && !clear {
                writeln!(out)?;
            }
            out.flush()
        }
    }
}
