//! The live instance catalog: EC2's instance types, their zones, spot prices and on-demand
//! prices, turned into the core's catalog by the core's own builder.
//!
//! Each input is cached for as long as it stays useful: instance types 6 h (they change when
//! AWS launches a family), zone offerings 1 h, spot prices 5 min (they move), on-demand prices
//! 6 h. The built catalog is cached per node-class settings and rebuilt when an input is
//! refreshed. The Pricing API answers from us-east-1 for every region; when it fails (moto
//! does not implement it) the core's embedded on-demand prices stand in, logged once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types::LocationType;
use aws_sdk_pricing::types::{Filter as PriceFilter, FilterType};
use aws_smithy_types::DateTime;
use nodewright_core::catalog::allocatable::NodeSettings;
use nodewright_core::catalog::ec2 as info;
use nodewright_core::catalog::{Catalog, Prices, embedded};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{ErrorKind, PortError, PortResult};

use crate::cache::{TtlCache, lock};
use crate::errors::from_sdk;

const HOUR: Millis = 3_600_000;
pub const INSTANCE_TYPES_TTL: Millis = 6 * HOUR;
pub const OFFERINGS_TTL: Millis = HOUR;
pub const SPOT_PRICES_TTL: Millis = 5 * 60_000;
pub const ON_DEMAND_PRICES_TTL: Millis = 6 * HOUR;

type Zones = HashMap<String, Vec<String>>;
type SpotPrices = HashMap<String, HashMap<String, f64>>;
type OnDemandPrices = HashMap<String, f64>;

/// The inputs a catalog was built from, compared by identity to tell whether it is stale.
#[derive(Clone)]
struct Inputs {
    types: Arc<Vec<info::InstanceTypeInfo>>,
    zones: Arc<Zones>,
    spot: Arc<SpotPrices>,
    on_demand: Arc<OnDemandPrices>,
}

impl Inputs {
    fn same_as(&self, other: &Inputs) -> bool {
        Arc::ptr_eq(&self.types, &other.types)
            && Arc::ptr_eq(&self.zones, &other.zones)
            && Arc::ptr_eq(&self.spot, &other.spot)
            && Arc::ptr_eq(&self.on_demand, &other.on_demand)
    }
}

/// EC2's catalog for one region, cached.
pub struct LiveCatalog {
    ec2: aws_sdk_ec2::Client,
    pricing: aws_sdk_pricing::Client,
    region: String,
    types: TtlCache<(), Arc<Vec<info::InstanceTypeInfo>>>,
    zones: TtlCache<(), Arc<Zones>>,
    spot: TtlCache<(), Arc<SpotPrices>>,
    on_demand: TtlCache<(), Arc<OnDemandPrices>>,
    /// By node settings (their `Debug` form: they are plain data without `Hash`).
    built: Mutex<HashMap<String, (Inputs, Arc<Catalog>)>>,
    fallback_logged: AtomicBool,
}

impl std::fmt::Debug for LiveCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCatalog")
            .field("region", &self.region)
            .finish()
    }
}

impl LiveCatalog {
    pub fn new(ec2: aws_sdk_ec2::Client, pricing: aws_sdk_pricing::Client, region: &str) -> Self {
        LiveCatalog {
            ec2,
            pricing,
            region: region.to_string(),
            types: TtlCache::new(INSTANCE_TYPES_TTL),
            zones: TtlCache::new(OFFERINGS_TTL),
            spot: TtlCache::new(SPOT_PRICES_TTL),
            on_demand: TtlCache::new(ON_DEMAND_PRICES_TTL),
            built: Mutex::new(HashMap::new()),
            fallback_logged: AtomicBool::new(false),
        }
    }

    /// The catalog for a node class's settings at `now`.
    pub async fn catalog(&self, settings: &NodeSettings, now: Millis) -> PortResult<Arc<Catalog>> {
        let inputs = Inputs {
            types: self.instance_types(now).await?,
            zones: self.zones(now).await?,
            spot: self.spot_prices(now).await?,
            on_demand: self.on_demand_prices(now).await?,
        };
        let key = format!("{settings:?}");
        if let Some((built_from, catalog)) = lock(&self.built).get(&key)
            && built_from.same_as(&inputs)
        {
            return Ok(catalog.clone());
        }
        let facts = embedded::static_facts().map_err(core_error)?;
        let prices = Prices {
            on_demand: (*inputs.on_demand).clone(),
            spot: (*inputs.spot).clone(),
        };
        let catalog = Arc::new(
            Catalog::build(
                &self.region,
                &inputs.types,
                &inputs.zones,
                &prices,
                facts,
                settings,
            )
            .map_err(core_error)?,
        );
        tracing::info!(
            region = %self.region,
            instance_types = catalog.types.len(),
            "built the instance catalog"
        );
        lock(&self.built).insert(key, (inputs, catalog.clone()));
        Ok(catalog)
    }

    /// Every instance type EC2 describes in the region (`DescribeInstanceTypes`).
    pub async fn instance_types(&self, now: Millis) -> PortResult<Arc<Vec<info::InstanceTypeInfo>>> {
        if let Some(types) = self.types.get(&(), now) {
            return Ok(types);
        }
        let mut out = Vec::new();
        let mut pages = self.ec2.describe_instance_types().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("DescribeInstanceTypes", e))?;
            out.extend(page.instance_types().iter().filter_map(convert));
        }
        out.sort_by(|a, b| a.instance_type.cmp(&b.instance_type));
        let types = Arc::new(out);
        self.types.put((), types.clone(), now);
        Ok(types)
    }

    async fn zones(&self, now: Millis) -> PortResult<Arc<Zones>> {
        if let Some(zones) = self.zones.get(&(), now) {
            return Ok(zones);
        }
        let mut out: Zones = HashMap::new();
        let mut pages = self
            .ec2
            .describe_instance_type_offerings()
            .location_type(LocationType::AvailabilityZone)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("DescribeInstanceTypeOfferings", e))?;
            for o in page.instance_type_offerings() {
                if let (Some(t), Some(zone)) = (o.instance_type(), o.location()) {
                    out.entry(t.as_str().to_string())
                        .or_default()
                        .push(zone.to_string());
                }
            }
        }
        for zones in out.values_mut() {
            zones.sort();
            zones.dedup();
        }
        let zones = Arc::new(out);
        self.zones.put((), zones.clone(), now);
        Ok(zones)
    }

    /// The latest Linux spot price of every type in every zone.
    async fn spot_prices(&self, now: Millis) -> PortResult<Arc<SpotPrices>> {
        if let Some(prices) = self.spot.get(&(), now) {
            return Ok(prices);
        }
        // Asking from now returns, for each type and zone, the price in force now.
        let mut latest: HashMap<(String, String), (i64, f64)> = HashMap::new();
        let mut pages = self
            .ec2
            .describe_spot_price_history()
            .start_time(DateTime::from_millis(now))
            .product_descriptions("Linux/UNIX")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("DescribeSpotPriceHistory", e))?;
            for p in page.spot_price_history() {
                let linux = p
                    .product_description()
                    .is_none_or(|d| d.as_str().starts_with("Linux/UNIX"));
                let (Some(t), Some(zone), Some(price)) = (
                    p.instance_type(),
                    p.availability_zone(),
                    p.spot_price().and_then(|s| s.parse::<f64>().ok()),
                ) else {
                    continue;
                };
                if !linux {
                    continue;
                }
                let at = p.timestamp().and_then(|t| t.to_millis().ok()).unwrap_or(0);
                let entry = latest
                    .entry((t.as_str().to_string(), zone.to_string()))
                    .or_insert((at, price));
                if at > entry.0 {
                    *entry = (at, price);
                }
            }
        }
        let mut out: SpotPrices = HashMap::new();
        for ((t, zone), (_, price)) in latest {
            out.entry(t).or_default().insert(zone, price);
        }
        let prices = Arc::new(out);
        self.spot.put((), prices.clone(), now);
        Ok(prices)
    }

    async fn on_demand_prices(&self, now: Millis) -> PortResult<Arc<OnDemandPrices>> {
        if let Some(prices) = self.on_demand.get(&(), now) {
            return Ok(prices);
        }
        match self.pricing_api().await {
            Ok(prices) if !prices.is_empty() => {
                let prices = Arc::new(prices);
                self.on_demand.put((), prices.clone(), now);
                Ok(prices)
            }
            outcome => {
                let reason = match outcome {
                    Err(e) => e.to_string(),
                    Ok(_) => "the Pricing API returned no prices".to_string(),
                };
                if !self.fallback_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        region = %self.region,
                        error = %reason,
                        "on-demand prices unavailable from the Pricing API; using the embedded us-east-1 prices"
                    );
                }
                let prices = Arc::new(embedded::prices().map_err(core_error)?.on_demand.clone());
                // Try the API again sooner than a good answer would be kept.
                self.on_demand.put_for((), prices.clone(), now, SPOT_PRICES_TTL);
                Ok(prices)
            }
        }
    }

    /// On-demand Linux prices for shared tenancy in the region, from the Pricing API.
    async fn pricing_api(&self) -> PortResult<OnDemandPrices> {
        let term = |field: &str, value: &str| {
            PriceFilter::builder()
                .r#type(FilterType::TermMatch)
                .field(field)
                .value(value)
                .build()
                .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()).with_source(e))
        };
        let filters = vec![
            term("regionCode", &self.region)?,
            term("operatingSystem", "Linux")?,
            term("tenancy", "Shared")?,
            term("preInstalledSw", "NA")?,
            term("capacitystatus", "Used")?,
            term("productFamily", "Compute Instance")?,
        ];
        let mut out = HashMap::new();
        let mut pages = self
            .pricing
            .get_products()
            .service_code("AmazonEC2")
            .format_version("aws_v1")
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("GetProducts", e))?;
            for item in page.price_list() {
                if let Some((t, price)) = parse_price_item(item) {
                    out.insert(t, price);
                }
            }
        }
        Ok(out)
    }
}

/// One Pricing API price-list document: the instance type and its hourly on-demand USD price.
fn parse_price_item(item: &str) -> Option<(String, f64)> {
    let doc: serde_json::Value = serde_json::from_str(item).ok()?;
    let instance_type = doc
        .pointer("/product/attributes/instanceType")?
        .as_str()?
        .to_string();
    let terms = doc.pointer("/terms/OnDemand")?.as_object()?;
    let price = terms
        .values()
        .filter_map(|term| term.get("priceDimensions")?.as_object())
        .flat_map(|dims| dims.values())
        .filter_map(|d| d.pointer("/pricePerUnit/USD")?.as_str()?.parse::<f64>().ok())
        .find(|p| *p > 0.0)?;
    Some((instance_type, price))
}

fn core_error(e: nodewright_core::Error) -> PortError {
    PortError::new(ErrorKind::Invalid, e.to_string()).with_source(e)
}

/// The SDK's description of an instance type in the core's plain shape.
fn convert(t: &aws_sdk_ec2::types::InstanceTypeInfo) -> Option<info::InstanceTypeInfo> {
    let mib = |m: Option<i32>| info::DeviceMemoryInfo { size_in_mib: m };
    Some(info::InstanceTypeInfo {
        instance_type: t.instance_type()?.as_str().to_string(),
        bare_metal: t.bare_metal(),
        hypervisor: t.hypervisor().map(|h| h.as_str().to_string()),
        supported_usage_classes: t
            .supported_usage_classes()
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        nitro_enclaves_support: t.nitro_enclaves_support().map(|n| n.as_str().to_string()),
        vcpu_info: t.v_cpu_info().map(|v| info::VCpuInfo {
            default_vcpus: v.default_v_cpus(),
        }),
        memory_info: t.memory_info().map(|m| info::MemoryInfo {
            size_in_mib: m.size_in_mib(),
        }),
        processor_info: t.processor_info().map(|p| info::ProcessorInfo {
            supported_architectures: p
                .supported_architectures()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            manufacturer: p.manufacturer().map(str::to_string),
            sustained_clock_speed_in_ghz: p.sustained_clock_speed_in_ghz(),
        }),
        network_info: t.network_info().map(|n| info::NetworkInfo {
            maximum_network_interfaces: n.maximum_network_interfaces(),
            default_network_card_index: n.default_network_card_index(),
            network_cards: n
                .network_cards()
                .iter()
                .map(|c| info::NetworkCardInfo {
                    network_card_index: c.network_card_index(),
                    maximum_network_interfaces: c.maximum_network_interfaces(),
                    baseline_bandwidth_in_gbps: c.baseline_bandwidth_in_gbps(),
                })
                .collect(),
            ipv4_addresses_per_interface: n.ipv4_addresses_per_interface(),
            efa_info: n.efa_info().map(|e| info::EfaInfo {
                maximum_efa_interfaces: e.maximum_efa_interfaces(),
            }),
            encryption_in_transit_supported: n.encryption_in_transit_supported(),
        }),
        gpu_info: t.gpu_info().map(|g| info::GpuInfo {
            gpus: g
                .gpus()
                .iter()
                .map(|d| info::GpuDeviceInfo {
                    name: d.name().map(str::to_string),
                    manufacturer: d.manufacturer().map(str::to_string),
                    count: d.count(),
                    memory_info: Some(mib(d.memory_info().and_then(|m| m.size_in_mib()))),
                })
                .collect(),
        }),
        neuron_info: t.neuron_info().map(|n| info::NeuronInfo {
            neuron_devices: n
                .neuron_devices()
                .iter()
                .map(|d| info::NeuronDeviceInfo {
                    name: d.name().map(str::to_string),
                    count: d.count(),
                    core_info: d.core_info().map(|c| info::NeuronDeviceCoreInfo {
                        count: c.count(),
                        version: c.version(),
                    }),
                    memory_info: Some(mib(d.memory_info().and_then(|m| m.size_in_mib()))),
                })
                .collect(),
        }),
        inference_accelerator_info: t
            .inference_accelerator_info()
            .map(|i| info::InferenceAcceleratorInfo {
                accelerators: i
                    .accelerators()
                    .iter()
                    .map(|d| info::InferenceDeviceInfo {
                        name: d.name().map(str::to_string),
                        manufacturer: d.manufacturer().map(str::to_string),
                        count: d.count(),
                        memory_info: Some(mib(d.memory_info().and_then(|m| m.size_in_mib()))),
                    })
                    .collect(),
            }),
        instance_storage_info: t.instance_storage_info().map(|s| info::InstanceStorageInfo {
            total_size_in_gb: s.total_size_in_gb(),
            nvme_support: s.nvme_support().map(|n| n.as_str().to_string()),
        }),
        ebs_info: t.ebs_info().map(|e| info::EbsInfo {
            ebs_optimized_support: e.ebs_optimized_support().map(|s| s.as_str().to_string()),
            ebs_optimized_info: e.ebs_optimized_info().map(|o| info::EbsOptimizedInfo {
                maximum_bandwidth_in_mbps: o.maximum_bandwidth_in_mbps(),
            }),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hourly_price_from_a_price_list_document() {
        let item = r#"{"product":{"attributes":{"instanceType":"m5.large","regionCode":"us-east-1"}},
            "terms":{"OnDemand":{"X.JRTCKXETXF":{"priceDimensions":{"X.JRTCKXETXF.6YS6EN2CT7":
            {"unit":"Hrs","pricePerUnit":{"USD":"0.0960000000"}}}}}}}"#;
        assert_eq!(parse_price_item(item), Some(("m5.large".to_string(), 0.096)));
        assert_eq!(parse_price_item("{}"), None);
        assert_eq!(parse_price_item("not json"), None);
    }
}
