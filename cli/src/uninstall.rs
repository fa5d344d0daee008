//! `nodewright uninstall`: drains and terminates every instance nodewright launched for the
//! cluster, then deletes its launch templates and instance profiles, one resumable step at a
//! time ([`nodewright_core::uninstall::run_step`]), and says what is left for `sam delete`.

use std::collections::BTreeSet;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use nodewright_core::uninstall::{LEFT_FOR_SAM_DELETE, UninstallConfig, hand_back, run_step};

use crate::live::{ConnectArgs, Live};
use crate::plan::Output;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  nodewright uninstall --cluster prod --yes
  nodewright uninstall --cluster prod --yes --force-after 30m -o json
  nodewright uninstall --cluster prod --abort        # give the cluster back to the functions")]
pub struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Go ahead: every node nodewright launched is drained and terminated.
    #[arg(long)]
    yes: bool,

    /// After this long, stop waiting for pods a PodDisruptionBudget or do-not-disrupt holds,
    /// and terminate their nodes with them: `15m`, `1h`.
    #[arg(long, value_name = "DURATION")]
    force_after: Option<String>,

    /// Call an uninstall off: release the lease it holds so the functions provision again.
    #[arg(long, conflicts_with_all = ["yes", "force_after"])]
    abort: bool,

    /// Seconds between steps.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    interval: u64,

    /// How to print the summary.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if !args.yes && !args.abort {
        anyhow::bail!(
            "uninstall drains and terminates every node nodewright launched for cluster {}, and \
             keeps the functions from launching more; run it again with --yes to go ahead",
            args.connect.cluster
        );
    }
    let force_after_ms = match &args.force_after {
        None => None,
        Some(text) => match nodewright_core::api::parse_duration(text) {
            Ok(Some(ms)) if ms >= 0 => Some(ms),
            _ => anyhow::bail!("--force-after {text:?}: expected a duration such as 15m or 1h"),
        },
    };
    crate::live::runtime()?.block_on(async {
        let live = Live::connect(&args.connect).await?;
        let config = UninstallConfig {
            force_after: force_after_ms.map(|ms| live.clock.now() + ms),
            ..UninstallConfig::default()
        };
        if args.abort {
            hand_back(&live.store, live.clock.as_ref(), &config)
                .await
                .map_err(|e| live.explain(e))?;
            println!(
                "released the uninstall's lease: nodewright's functions provision {} again",
                live.name
            );
            return Ok(());
        }
        // Progress goes to a terminal only; piped, the summary alone is printed.
        let progress = io::stderr().is_terminal();
        let mut removed = Removed::default();
        loop {
            let report = run_step(
                &live.cluster,
                &live.cloud,
                &live.store,
                live.clock.as_ref(),
                &config,
            )
            .await
            .map_err(|e| live.explain(e))?;
            // (claim, instance, reason): a claim closed before it had an instance counts none.
            removed.instances.extend(
                report
                    .lifecycle
                    .terminated
                    .iter()
                    .filter_map(|t| t.instance.clone()),
            );
            removed
                .instances
                .extend(report.orphans_terminated.iter().cloned());
            removed
                .launch_templates
                .extend(report.launch_templates_deleted.iter().cloned());
            removed
                .instance_profiles
                .extend(report.instance_profiles_deleted.iter().cloned());
            if progress {
                eprintln!("{}", report.progress_line());
                for held in &report.remaining.blocked_pods {
                    eprintln!("  {} on {}: {}", held.pod, held.node, held.reason);
                }
            }
            if report.done {
                break;
            }
            tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
        }
        let mut out = io::stdout().lock();
        let written = match args.output {
            Output::Table => removed.write(&mut out, &live.name),
            Output::Json => removed.write_json(&mut out, &live.name),
        };
        crate::plan::finish(written, "writing the summary")
    })
}

/// What the whole uninstall removed.
#[derive(Default)]
struct Removed {
    instances: BTreeSet<String>,
    launch_templates: BTreeSet<String>,
    instance_profiles: BTreeSet<String>,
}

impl Removed {
    fn write(&self, out: &mut impl Write, cluster: &str) -> io::Result<()> {
        writeln!(out, "nodewright is uninstalled from {cluster}:")?;
        writeln!(out, "  instances terminated     {}", self.instances.len())?;
        writeln!(out, "  launch templates deleted {}", self.launch_templates.len())?;
        writeln!(
            out,
            "  instance profiles deleted {}",
            self.instance_profiles.len()
        )?;
        writeln!(
            out,
            "The functions will not launch again (the uninstall holds their lease for a day). Left to remove:"
        )?;
        for left in LEFT_FOR_SAM_DELETE {
            writeln!(out, "  - {left}")?;
        }
        Ok(())
    }

    fn write_json(&self, out: &mut impl Write, cluster: &str) -> io::Result<()> {
        let document = serde_json::json!({
            "cluster": cluster,
            "instances_terminated": self.instances,
            "launch_templates_deleted": self.launch_templates,
            "instance_profiles_deleted": self.instance_profiles,
            "left": LEFT_FOR_SAM_DELETE,
        });
        serde_json::to_writer_pretty(&mut *out, &document).map_err(io::Error::from)?;
        writeln!(out)
    }
}
