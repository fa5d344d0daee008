//! `nodewright`: what operators do by hand — simulate, plan, catalog.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod catalog;
mod convert;
mod plan;
mod simulate;

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
    Catalog(catalog::Args),
    /// Benchmarks: `bench scheduling --pods N --mix diverse|plain|mixed`.
    Bench(bench::Args),
    /// Convert Karpenter v1alpha5/v1beta1 objects to v1 NodePools and EC2NodeClasses:
    /// `convert -f FILE...` (`-` for standard input).
    Convert(convert::Args),
    /// Plan the nodes a set of manifests needs: `plan -f PATH... [--output table|json]`.
    Plan(plan::Args),
    /// Play a scenario on the embedded cloud and cluster: `simulate [SCENARIO] [--output table|json]
    /// [--report DIR]`.
    Simulate(simulate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Catalog(args) => catalog::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Simulate(args) => simulate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
