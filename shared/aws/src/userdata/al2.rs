//! AL2: cloud-init runs the parts of a MIME document in order; the user's come first, then our
//! script calling the AMI's `/etc/eks/bootstrap.sh`.

use std::collections::BTreeMap;

use super::{Bootstrap, custom_parts, invalid, mime};
use nodewright_core::ports::PortResult;

pub(super) fn render(b: &Bootstrap) -> PortResult<String> {
    // Everything below lands inside single quotes in a shell command.
    let quoted = |what: &str, value: &str| -> PortResult<String> {
        if value.contains('\'') {
            return Err(invalid(format!("{what} {value:?} contains a single quote")));
        }
        Ok(format!("'{value}'"))
    };

    let mut extra = Vec::new();
    if !b.labels.is_empty() {
        extra.push(format!("--node-labels={}", b.labels_arg()));
    }
    if !b.taints.is_empty() {
        extra.push(format!("--register-with-taints={}", b.taints_arg()));
    }
    if let Some(max_pods) = b.kubelet.max_pods {
        extra.push(format!("--max-pods={max_pods}"));
    }
    if let Some(per_core) = b.kubelet.pods_per_core {
        extra.push(format!("--pods-per-core={per_core}"));
    }
    let joined = |m: &BTreeMap<String, String>, sep: &str| {
        m.iter()
            .map(|(k, v)| format!("{k}{sep}{v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for (flag, map, sep) in [
        ("--system-reserved", &b.kubelet.system_reserved, "="),
        ("--kube-reserved", &b.kubelet.kube_reserved, "="),
        ("--eviction-hard", &b.kubelet.eviction_hard, "<"),
    ] {
        if !map.is_empty() {
            extra.push(format!("{flag}={}", joined(map, sep)));
        }
    }

    let mut script = String::from(
        "#!/bin/bash -xe\nexec > >(tee /var/log/user-data.log|logger -t user-data -s 2>/dev/console) 2>&1\n",
    );
    // bootstrap.sh parses `--flag value`, not `--flag=value`.
    script.push_str(&format!(
        "/etc/eks/bootstrap.sh {} --apiserver-endpoint {} --b64-cluster-ca {}",
        quoted("cluster name", &b.cluster_name)?,
        quoted("cluster endpoint", &b.cluster_endpoint)?,
        quoted("CA bundle", &b.ca_bundle)?,
    ));
    script.push_str(&format!(
        " \\\n--dns-cluster-ip {}",
        quoted("cluster DNS IP", &b.cluster_dns_ip)?
    ));
    if b.kubelet.max_pods.is_some() {
        // Otherwise bootstrap.sh writes its own max-pods, which would contradict ours.
        script.push_str(" \\\n--use-max-pods false");
    }
    if !extra.is_empty() {
        script.push_str(&format!(
            " \\\n--kubelet-extra-args {}",
            quoted("kubelet flags", &extra.join(" "))?
        ));
    }
    if b.raid0 {
        script.push_str(" \\\n--local-disks raid0");
    }
    script.push('\n');

    let mut parts = custom_parts(b.custom.as_deref(), |_| mime::SHELL_SCRIPT)?;
    parts.push(mime::Part::new(mime::SHELL_SCRIPT, &script));
    Ok(mime::serialize(&parts))
}
