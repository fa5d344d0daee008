//! `nodewright`: what operators do by hand — simulate, plan, catalog; and, with the `live`
//! feature (on by default), look at a live cluster: plan against it, status, history.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod catalog;
mod convert;
#[cfg(feature = "live")]
mod history;
#[cfg(feature = "live")]
mod live;
#[cfg(feature = "live")]
mod live_plan;
mod plan;
mod simulate;
#[cfg(feature = "live")]
mod status;
#[cfg(feature = "live")]
mod uninstall;

#[derive(Debug, Parser)]
#[command(
    name = "nodewright",
    version,
    about = "Just-in-time worker nodes for EKS, run from Lambda"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the instance catalog with labels, capacity, allocatable and offerings.
    #[command(after_help = "Examples:
  nodewright catalog
  nodewright catalog --region eu-west-1 -l 'karpenter.k8s.aws/instance-family=m6i' -o json")]
    Catalog(catalog::Args),
    /// Benchmarks: `bench scheduling --pods N --mix diverse|plain|mixed`.
    #[command(after_help = "Examples:
  nodewright bench scheduling --pods 10000 --mix diverse
  nodewright bench consolidation --nodes 1000 --pods 10000 -o json")]
    Bench(bench::Args),
    /// Convert Karpenter v1alpha5/v1beta1 objects to v1 NodePools and EC2NodeClasses:
    /// `convert -f FILE...` (`-` for standard input).
    #[command(after_help = "Examples:
  nodewright convert -f provisioners.yaml > nodepools.yaml
  kubectl get provisioners,awsnodetemplates -o yaml | nodewright convert -f -")]
    Convert(convert::Args),
    /// The audit trail of a live cluster: launches, disruptions, terminations, with $/h:
    /// `history --cluster NAME [--since 2h] [--node NAME|--claim ID] [--reason TEXT]`.
    #[cfg(feature = "live")]
    History(history::Args),
    /// Plan the nodes a set of manifests needs: `plan -f PATH... [--output table|json]`; or
    /// what the provisioner would do now on a live cluster, launching nothing:
    /// `plan --cluster NAME [--disruption]`.
    Plan(plan::Args),
    /// Play a scenario on the embedded cloud and cluster: `simulate [SCENARIO] [--output table|json]
    /// [--report DIR]`.
    #[command(after_help = "Examples:
  nodewright simulate
  nodewright simulate scenarios/inflate.yaml --status-every 5m
  nodewright simulate scenarios/inflate.yaml -o json
  nodewright simulate --report report/ --baseline-type m5.2xlarge")]
    Simulate(simulate::Args),
    /// The fleet of a live cluster: nodes with $/h and requested against allocatable, claims in
    /// flight and disrupting: `status --cluster NAME [--watch [SECS]]`.
    #[cfg(feature = "live")]
    Status(status::Args),
    /// Remove nodewright's instances, launch templates and instance profiles from a cluster
    /// (draining its nodes first): `uninstall --cluster NAME --yes [--force-after 30m]`.
    #[cfg(feature = "live")]
    Uninstall(uninstall::Args),
}

/// `plan` against a live cluster with `--cluster`, against manifests otherwise.
fn run_plan(args: &plan::Args) -> anyhow::Result<()> {
    #[cfg(feature = "live")]
    if let Some((connect, disruption)) = args.live_target() {
        return live_plan::run(&connect, disruption, args.output);
    }
    plan::run(args)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Catalog(args) => catalog::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Convert(args) => convert::run(&args),
        #[cfg(feature = "live")]
        Command::History(args) => history::run(&args),
        Command::Plan(args) => run_plan(&args),
        Command::Simulate(args) => simulate::run(&args),
        #[cfg(feature = "live")]
        Command::Status(args) => status::run(&args),
        #[cfg(feature = "live")]
        Command::Uninstall(args) => uninstall::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
