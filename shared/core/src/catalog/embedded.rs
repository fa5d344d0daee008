//! The embedded us-east-1 catalog: a committed snapshot of EC2's instance types, their
//! us-east-1 zones and on-demand prices, and Karpenter's VPC-limit and bandwidth tables (see
//! `shared/core/data/README.md` for where each file came from). The simulator and the CLI use
//! it; the live catalog uses [`static_facts`] and its own EC2 data.
//!
//! # Spot prices
//!
//! Spot prices move, so the snapshot has none. The embedded catalog models them, the same on
//! every run: the spot price of a type in a zone is its on-demand price times a factor between
//! 0.30 and 0.45 (a 55–70% saving, the usual range), picked by the 64-bit FNV-1a hash of
//! `"<type>/<zone>"` (passed through SplitMix64's finalizer so that zones differing in one
//! letter land far apart), and rounded to four decimals (at least $0.0001). Zones therefore
//! differ, as real spot markets do, and a plan built on the embedded catalog is reproducible.
//!
//! Decoding happens once per process; a damaged file is an [`Error::Catalog`] naming the file
//! and line or the instance type.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::sync::OnceLock;

use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::catalog::allocatable::{NodeSettings, VpcLimits};
use crate::catalog::ec2::InstanceTypeInfo;
use crate::catalog::{Catalog, Prices, StaticFacts};
use crate::error::{Error, Result};

/// The region the snapshot describes.
pub const REGION: &str = "us-east-1";

const INSTANCE_TYPES_GZ: &[u8] = include_bytes!("../../data/ec2-instance-types.json.gz");
const OFFERINGS_CSV: &str = include_str!("../../data/ec2-offerings-us-east-1.csv");
const ON_DEMAND_CSV: &str = include_str!("../../data/ec2-on-demand-prices.csv");
const VPC_LIMITS_CSV: &str = include_str!("../../data/ec2-vpc-limits.csv");
const BANDWIDTH_CSV: &str = include_str!("../../data/ec2-network-bandwidth.csv");

/// Spot price as a share of on-demand: `SPOT_FACTOR_MIN` plus up to `SPOT_FACTOR_SPAN`.
const SPOT_FACTOR_MIN: f64 = 0.30;
const SPOT_FACTOR_SPAN: f64 = 0.15;

/// The catalog with AL2023 defaults, built once per process.
pub fn default_catalog() -> Result<&'static Catalog> {
    static CATALOG: OnceLock<std::result::Result<Catalog, String>> = OnceLock::new();
    cached(&CATALOG, || catalog(&NodeSettings::default()))
}

/// The us-east-1 catalog for a node class's settings.
pub fn catalog(settings: &NodeSettings) -> Result<Catalog> {
    Catalog::build(
        REGION,
        instance_types()?,
        zones()?,
        prices()?,
        static_facts()?,
        settings,
    )
    // A type the snapshot describes badly is damage to the snapshot, not to the caller's input.
    .map_err(|e| match e {
        Error::Invalid {
            kind: "instance type",
            ..
        } => Error::Catalog(e.to_string()),
        other => other,
    })
}

/// Every instance type of the snapshot, sorted by name.
pub fn instance_types() -> Result<&'static [InstanceTypeInfo]> {
    static TYPES: OnceLock<std::result::Result<Vec<InstanceTypeInfo>, String>> = OnceLock::new();
    cached(&TYPES, decode_instance_types).map(Vec::as_slice)
}

/// The us-east-1 zones each type is offered in.
pub fn zones() -> Result<&'static HashMap<String, Vec<String>>> {
    static ZONES: OnceLock<std::result::Result<HashMap<String, Vec<String>>, String>> = OnceLock::new();
    cached(&ZONES, || {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for row in rows("ec2-offerings-us-east-1.csv", OFFERINGS_CSV, "instance_type,zone")? {
            let [name, zone] = row.fields()?;
            out.entry(name.to_string()).or_default().push(zone.to_string());
        }
        for zones in out.values_mut() {
            zones.sort_unstable();
            zones.dedup();
        }
        Ok(out)
    })
}

/// On-demand prices from the snapshot and modelled spot prices for every offered zone.
pub fn prices() -> Result<&'static Prices> {
    static PRICES: OnceLock<std::result::Result<Prices, String>> = OnceLock::new();
    cached(&PRICES, || {
        let mut on_demand = HashMap::new();
        for row in rows(
            "ec2-on-demand-prices.csv",
            ON_DEMAND_CSV,
            "region,instance_type,usd_per_hour",
        )? {
            let [region, name, price] = row.fields()?;
            if region == REGION {
                on_demand.insert(name.to_string(), row.parse::<f64>(price)?);
            }
        }
        let mut spot: HashMap<String, HashMap<String, f64>> = HashMap::new();
        let zones = zones()?;
        for info in instance_types()? {
            let name = info.instance_type.as_str();
            let (Some(price), Some(zones)) = (on_demand.get(name), zones.get(name)) else {
                continue;
            };
            if info.supports_usage_class("spot") {
                let by_zone = zones
                    .iter()
                    .map(|z| (z.clone(), modelled_spot_price(name, z, *price)))
                    .collect();
                spot.insert(name.to_string(), by_zone);
            }
        }
        Ok(Prices { on_demand, spot })
    })
}

/// Karpenter's generated per-type tables: VPC trunking limits and network bandwidth.
pub fn static_facts() -> Result<&'static StaticFacts> {
    static FACTS: OnceLock<std::result::Result<StaticFacts, String>> = OnceLock::new();
    cached(&FACTS, || {
        let mut vpc_limits = HashMap::new();
        let header = "instance_type,max_enis,ipv4_per_eni,trunking_compatible,branch_enis,network_cards,default_network_card,hypervisor,bare_metal";
        for row in rows("ec2-vpc-limits.csv", VPC_LIMITS_CSV, header)? {
            let [name, _, _, trunking, branch, _, _, _, _] = row.fields()?;
            let limits = VpcLimits {
                trunking_compatible: row.parse(trunking)?,
                branch_interfaces: row.parse(branch)?,
            };
            vpc_limits.insert(name.to_string(), limits);
        }
        let mut network_bandwidth_mbps = HashMap::new();
        for row in rows(
            "ec2-network-bandwidth.csv",
            BANDWIDTH_CSV,
            "instance_type,megabits",
        )? {
            let [name, mbps] = row.fields()?;
            network_bandwidth_mbps.insert(name.to_string(), row.parse(mbps)?);
        }
        Ok(StaticFacts {
            vpc_limits,
            network_bandwidth_mbps,
        })
    })
}

/// The embedded catalog's spot price for a type in a zone (see the module docs).
pub fn modelled_spot_price(instance_type: &str, zone: &str, on_demand: f64) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in instance_type
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(zone.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV-1a barely moves the high bits for a change in the last byte; mix them.
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    // The top 53 bits make an exact f64 in [0, 1).
    let unit = (hash >> 11) as f64 / (1u64 << 53) as f64;
    let factor = SPOT_FACTOR_MIN + SPOT_FACTOR_SPAN * unit;
    ((on_demand * factor * 10_000.0).round() / 10_000.0).max(0.0001)
}

/// Runs `load` once and hands out the result; the error is kept as text because the core's
/// error type is not `Clone`.
fn cached<T>(
    cell: &'static OnceLock<std::result::Result<T, String>>,
    load: impl FnOnce() -> Result<T>,
) -> Result<&'static T> {
    cell.get_or_init(|| load().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Catalog(e.clone()))
}

fn decode_instance_types() -> Result<Vec<InstanceTypeInfo>> {
    let mut json = Vec::with_capacity(INSTANCE_TYPES_GZ.len() * 40);
    flate2::read::GzDecoder::new(INSTANCE_TYPES_GZ)
        .read_to_end(&mut json)
        .map_err(|e| Error::Catalog(format!("ec2-instance-types.json.gz: {e}")))?;
    let TypeMap(mut types) = serde_json::from_slice(&json)
        .map_err(|e| Error::Catalog(format!("ec2-instance-types.json.gz: {e}")))?;
    types.sort_by(|a, b| a.instance_type.cmp(&b.instance_type));
    Ok(types)
}

/// The snapshot's `{"<type>": InstanceTypeInfo, …}`, read entry by entry so that an error names
/// the type it is in.
struct TypeMap(Vec<InstanceTypeInfo>);

impl<'de> serde::Deserialize<'de> for TypeMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct TypeMapVisitor;
        impl<'de> Visitor<'de> for TypeMapVisitor {
            type Value = TypeMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from instance type name to its description")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<TypeMap, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(name) = map.next_key::<String>()? {
                    let info: InstanceTypeInfo = map
                        .next_value()
                        .map_err(|e| de::Error::custom(format!("instance type {name:?}: {e}")))?;
                    if info.instance_type != name {
                        return Err(de::Error::custom(format!(
                            "instance type {name:?} is described as {:?}",
                            info.instance_type
                        )));
                    }
                    out.push(info);
                }
                Ok(TypeMap(out))
            }
        }
        d.deserialize_map(TypeMapVisitor)
    }
}

/// One data line of an embedded CSV, for error messages that point at it.
struct Row<'a> {
    file: &'static str,
    line: usize,
    text: &'a str,
}

impl<'a> Row<'a> {
    fn error(&self, reason: impl fmt::Display) -> Error {
        Error::Catalog(format!("{} line {}: {reason}", self.file, self.line))
    }

    fn fields<const N: usize>(&self) -> Result<[&'a str; N]> {
        let fields: Vec<&'a str> = self.text.split(',').collect();
        let n = fields.len();
        fields
            .try_into()
            .map_err(|_| self.error(format!("expected {N} fields, found {n}")))
    }

    fn parse<T: std::str::FromStr>(&self, field: &str) -> Result<T> {
        field
            .parse()
            .map_err(|_| self.error(format!("cannot read {field:?}")))
    }
}

/// The data lines of an embedded CSV after checking its header (a changed layout must fail
/// loudly, not shift columns).
fn rows(file: &'static str, text: &'static str, header: &str) -> Result<impl Iterator<Item = Row<'static>>> {
    let mut lines = text.lines().enumerate();
    let first = lines.next().map_or("", |(_, l)| l.trim_end());
    if first != header {
        return Err(Error::Catalog(format!(
            "{file}: expected the header {header:?}, found {first:?}"
        )));
    }
    Ok(lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(move |(i, l)| Row {
            file,
            line: i + 1,
            text: l.trim_end(),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_model_is_deterministic_and_within_its_range() {
        let a = modelled_spot_price("m5.large", "us-east-1a", 0.096);
        assert_eq!(a, modelled_spot_price("m5.large", "us-east-1a", 0.096));
        assert!((0.0288..=0.0432).contains(&a), "{a}");
        let zones: Vec<f64> = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
            .iter()
            .map(|z| modelled_spot_price("m5.large", z, 0.096))
            .collect();
        assert!(
            zones.iter().any(|p| *p != zones[0]),
            "zones should differ: {zones:?}"
        );
        assert_eq!(modelled_spot_price("t4g.nano", "us-east-1a", 0.0001), 0.0001);
    }

    #[test]
    fn spot_prices_have_four_decimals() {
        let p = modelled_spot_price("c5.xlarge", "us-east-1c", 0.17);
        assert!(((p * 10_000.0).round() - p * 10_000.0).abs() < 1e-9, "{p}");
    }
}
