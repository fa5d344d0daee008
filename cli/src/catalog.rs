//! `nodewright catalog`: the instance catalog nodewright plans with — labels, capacity,
//! allocatable and offerings — filtered by a Kubernetes label selector.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{Context, bail};
use nodewright_core::catalog::{CapacityType, InstanceType, Offering, embedded};
use nodewright_core::labels;
use nodewright_core::resources::{ResourceName, Resources};
use nodewright_core::selector::parse_label_selector;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The region whose catalog to list. Only the embedded us-east-1 snapshot is available.
    #[arg(long, default_value = embedded::REGION)]
    region: String,

    /// A Kubernetes label selector over the types' labels; zone and capacity type match any
    /// of a type's offerings (e.g. `-l 'karpenter.k8s.aws/instance-family in (m5,m6i),karpenter.sh/capacity-type=spot'`).
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    selector: Option<String>,

    /// How to print the types.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.region != embedded::REGION {
        bail!(
            "no catalog for region {:?}: only the embedded {} snapshot is available offline",
            args.region,
            embedded::REGION
        );
    }
    let selector = parse_label_selector(args.selector.as_deref().unwrap_or(""))?;
    let catalog = embedded::default_catalog().context("loading the embedded catalog")?;
    let types: Vec<&InstanceType> = catalog
        .types
        .iter()
        .filter(|t| t.matches_selector(&selector))
        .collect();
    let mut out = io::stdout().lock();
    let written = match args.output {
        Output::Table => write_table(&mut out, &types),
        Output::Json => write_json(&mut out, &types),
    };
    match written {
        // `nodewright catalog | head` closes the pipe early; that is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the catalog"),
    }
}

/// The resources always shown, then any device resource a type has.
const SHOWN: [ResourceName; 4] = [
    ResourceName::Cpu,
    ResourceName::Memory,
    ResourceName::Pods,
    ResourceName::EphemeralStorage,
];

fn quantities(r: &Resources) -> BTreeMap<&'static str, String> {
    ResourceName::ALL
        .into_iter()
        .filter(|name| SHOWN.contains(name) || r.get(*name) != 0)
        .map(|name| (name.as_str(), name.format(r.get(name))))
        .collect()
}

#[derive(Serialize)]
struct TypeJson<'a> {
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
    capacity: BTreeMap<&'static str, String>,
    allocatable: BTreeMap<&'static str, String>,
    offerings: &'a [Offering],
}

fn write_json(out: &mut impl Write, types: &[&InstanceType]) -> io::Result<()> {
    let list: Vec<TypeJson<'_>> = types
        .iter()
        .map(|t| TypeJson {
            name: &t.name,
            labels: &t.labels,
            capacity: quantities(&t.capacity),
            allocatable: quantities(&t.allocatable),
            offerings: &t.offerings,
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &list)?;
    writeln!(out)
}

fn write_table(out: &mut impl Write, types: &[&InstanceType]) -> io::Result<()> {
    let header = [
        "NAME",
        "ARCH",
        "VCPU",
        "MEMORY",
        "ALLOC CPU",
        "ALLOC MEMORY",
        "ALLOC PODS",
        "ON-DEMAND $/H",
        "SPOT $/H",
    ];
    let price = |t: &InstanceType, c: CapacityType| {
        t.cheapest(c)
            .map_or_else(|| "-".to_string(), |o| format!("{:.4}", o.price))
    };
    let rows: Vec<[String; 9]> = types
        .iter()
        .map(|t| {
            let memory = t
                .labels
                .get(labels::INSTANCE_MEMORY)
                .and_then(|mib| mib.parse::<i64>().ok())
                .map_or_else(|| "-".to_string(), |mib| ResourceName::Memory.format(mib << 20));
            [
                t.name.clone(),
                t.labels.get(labels::ARCH).cloned().unwrap_or_default(),
                t.vcpus().to_string(),
                memory,
                ResourceName::Cpu.format(t.allocatable.cpu()),
                ResourceName::Memory.format(t.allocatable.memory()),
                t.allocatable.pods().to_string(),
                price(t, CapacityType::OnDemand),
                price(t, CapacityType::Spot),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            // Names and arch read left to right; numbers line up on the right.
            .map(|(i, (cell, w))| {
                if i < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(selector: &str) -> Vec<&'static InstanceType> {
        let selector = parse_label_selector(selector).expect("valid selector");
        embedded::default_catalog()
            .expect("catalog")
            .types
            .iter()
            .filter(|t| t.matches_selector(&selector))
            .collect()
    }

    #[test]
    fn json_shows_quantities_as_kubernetes_writes_them() {
        let mut out = Vec::new();
        write_json(&mut out, &types("node.kubernetes.io/instance-type=m5.large")).expect("written");
        let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        let m5 = &json[0];
        assert_eq!(m5["name"], "m5.large");
        assert_eq!(m5["allocatable"]["cpu"], "1930m");
        assert_eq!(m5["allocatable"]["memory"], "6903Mi");
        assert_eq!(m5["allocatable"]["pods"], "29");
        assert_eq!(m5["allocatable"]["ephemeral-storage"], "17Gi");
        assert_eq!(m5["capacity"]["cpu"], "2");
        assert_eq!(m5["labels"]["kubernetes.io/arch"], "amd64");
        let offering = &m5["offerings"][0];
        assert!(
            offering["zone"]
                .as_str()
                .is_some_and(|z| z.starts_with("us-east-1"))
        );
        assert_eq!(offering["capacity_type"], "spot");
        assert!(offering["price"].as_f64().is_some_and(|p| p > 0.0));
    }

    #[test]
    fn table_has_a_header_and_one_aligned_row_per_type() {
        let mut out = Vec::new();
        write_table(&mut out, &types("karpenter.k8s.aws/instance-family=m5")).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"));
        let m5 = lines
            .iter()
            .find(|l| l.starts_with("m5.large "))
            .expect("m5.large row");
        let cells: Vec<&str> = m5.split_whitespace().collect();
        assert_eq!(
            cells[..7],
            ["m5.large", "amd64", "2", "8Gi", "1930m", "6903Mi", "29"]
        );
        assert_eq!(cells[7], "0.0960");
    }

    #[test]
    fn other_regions_are_a_clear_error() {
        let args = Args {
            region: "eu-west-1".into(),
            selector: None,
            output: Output::Table,
        };
        let err = run(&args).expect_err("not embedded").to_string();
        assert!(err.contains("eu-west-1") && err.contains("us-east-1"), "{err}");
    }

    #[test]
    fn malformed_selectors_are_reported() {
        let args = Args {
            region: embedded::REGION.into(),
            selector: Some("a in (".into()),
            output: Output::Json,
        };
        let err = run(&args).expect_err("malformed").to_string();
        assert!(err.contains("label selector"), "{err}");
    }
}
