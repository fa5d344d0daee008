//! Bottlerocket: TOML settings. The user's TOML is the base; ours overwrite the cluster
//! identity (`api-server`, `cluster-certificate`, `cluster-name`), the node labels we set, the
//! taints (the NodePool owns them, so the user's are replaced), and the kubelet settings the
//! node class sets. `cluster-dns-ip` is filled in only when the user has none (e.g. a
//! NodeLocal DNSCache address).

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::{Bootstrap, invalid};
use nodewright_core::ports::PortResult;

pub(super) fn render(b: &Bootstrap) -> PortResult<String> {
    let mut root: Table = match b.custom.as_deref() {
        Some(custom) => custom
            .parse()
            .map_err(|e| invalid(format!("userData is not valid TOML for Bottlerocket: {e}")))?,
        None => Table::new(),
    };
    let settings = table_at(&mut root, "settings")?;
    let kubernetes = table_at(settings, "kubernetes")?;

    kubernetes.insert("api-server".into(), b.cluster_endpoint.clone().into());
    kubernetes.insert("cluster-certificate".into(), b.ca_bundle.clone().into());
    kubernetes.insert("cluster-name".into(), b.cluster_name.clone().into());
    kubernetes
        .entry("cluster-dns-ip")
        .or_insert_with(|| b.cluster_dns_ip.clone().into());
    if let Some(max_pods) = b.kubelet.max_pods {
        kubernetes.insert("max-pods".into(), max_pods.into());
    }

    if !b.labels.is_empty() {
        let labels = table_at(kubernetes, "node-labels")?;
        for (k, v) in &b.labels {
            labels.insert(k.clone(), v.clone().into());
        }
    }

    kubernetes.remove("node-taints");
    if !b.taints.is_empty() {
        let mut taints: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for t in &b.taints {
            let entry = format!("{}:{:?}", t.value.as_deref().unwrap_or(""), t.effect);
            taints.entry(t.key.clone()).or_default().push(entry.into());
        }
        let taints: Table = taints.into_iter().map(|(k, v)| (k, Value::Array(v))).collect();
        kubernetes.insert("node-taints".into(), Value::Table(taints));
    }

    for (key, map) in [
        ("kube-reserved", &b.kubelet.kube_reserved),
        ("system-reserved", &b.kubelet.system_reserved),
        ("eviction-hard", &b.kubelet.eviction_hard),
    ] {
        if !map.is_empty() {
            let table: Table = map.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
            kubernetes.insert(key.into(), Value::Table(table));
        }
    }

    if b.raid0 {
        let commands = table_at(settings, "bootstrap-commands")?;
        let mut mount = Table::new();
        let cmd = |args: &[&str]| Value::Array(args.iter().map(|a| Value::from(*a)).collect());
        mount.insert(
            "commands".into(),
            Value::Array(vec![
                cmd(&["apiclient", "ephemeral-storage", "init"]),
                cmd(&[
                    "apiclient",
                    "ephemeral-storage",
                    "bind",
                    "--dirs",
                    "/var/lib/containerd",
                    "/var/lib/kubelet",
                    "/var/log/pods",
                ]),
            ]),
        );
        mount.insert("essential".into(), true.into());
        mount.insert("mode".into(), "always".into());
        commands.insert("000-mount-instance-storage".into(), Value::Table(mount));
    }

    toml::to_string(&root).map_err(|e| invalid(format!("cannot write Bottlerocket settings: {e}")))
}

/// The table under `key`, created if absent; an error if the user put something else there.
fn table_at<'a>(parent: &'a mut Table, key: &str) -> PortResult<&'a mut Table> {
    match parent.entry(key).or_insert_with(|| Value::Table(Table::new())) {
        Value::Table(t) => Ok(t),
        _ => Err(invalid(format!("userData: `{key}` must be a TOML table"))),
    }
}
