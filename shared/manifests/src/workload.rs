//! Workloads expanded into the pods their controllers would create, for the offline planner.
//!
//! Pods are named `<workload>-<index>` from 0 and carry the template's labels and spec, the
//! workload's namespace and creation time, and the owner their controller would set (a
//! Deployment's pods are owned by a ReplicaSet, named here after the Deployment because the
//! template hash is not known offline).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nodewright_core::pod::Pod;
use nodewright_core::volumes::PodVolumeClaim;

use crate::error::{At, Error, Result};
use crate::pod::{from_spec, millis, namespace_of};

/// `spec.replicas` pods (default 1).
pub fn pods_from_deployment(d: &Deployment) -> Result<Vec<Pod>> {
    let object = object("Deployment", &d.metadata)?;
    let spec = d
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(&object, "spec", "is required"))?;
    let pod = template_pod(&object, "ReplicaSet", &d.metadata, &spec.template)?;
    Ok(replicate(&pod, count(&object, "spec.replicas", spec.replicas)?))
}

/// `spec.replicas` pods (default 1).
pub fn pods_from_replica_set(rs: &ReplicaSet) -> Result<Vec<Pod>> {
    let object = object("ReplicaSet", &rs.metadata)?;
    let spec = rs
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(&object, "spec", "is required"))?;
    let template = spec
        .template
        .as_ref()
        .ok_or_else(|| Error::invalid(&object, "spec.template", "is required"))?;
    let pod = template_pod(&object, "ReplicaSet", &rs.metadata, template)?;
    Ok(replicate(&pod, count(&object, "spec.replicas", spec.replicas)?))
}

/// `spec.replicas` pods (default 1), named by ordinal as the StatefulSet controller names them.
pub fn pods_from_stateful_set(sts: &StatefulSet) -> Result<Vec<Pod>> {
    let object = object("StatefulSet", &sts.metadata)?;
    let spec = sts
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(&object, "spec", "is required"))?;
    let mut pod = template_pod(&object, "StatefulSet", &sts.metadata, &spec.template)?;
    // Each replica gets its own claim from each template, named after the template and the pod.
    for t in spec.volume_claim_templates.iter().flatten() {
        let template = t.metadata.name.clone().unwrap_or_default();
        if template.is_empty() {
            return Err(Error::invalid(
                &object,
                "spec.volumeClaimTemplates[].metadata.name",
                "is required",
            ));
        }
        pod.volume_claims.push(PodVolumeClaim::Template {
            template,
            storage_class: t.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
        });
    }
    Ok(replicate(&pod, count(&object, "spec.replicas", spec.replicas)?))
}

/// The pods a Job runs at once: `spec.parallelism` (default 1), capped by `spec.completions`
/// as the Job controller caps it, and none while the Job is suspended.
pub fn pods_from_job(job: &Job) -> Result<Vec<Pod>> {
    let object = object("Job", &job.metadata)?;
    let spec = job
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(&object, "spec", "is required"))?;
    let pod = template_pod(&object, "Job", &job.metadata, &spec.template)?;
    let mut n = count(&object, "spec.parallelism", spec.parallelism)?;
    if spec.completions.is_some() {
        n = n.min(count(&object, "spec.completions", spec.completions)?);
    }
    if spec.suspend == Some(true) {
        n = 0;
    }
    Ok(replicate(&pod, n))
}

/// The DaemonSet's pod template, named after the DaemonSet: overhead on every node it would
/// run on.
pub fn daemonset_pod(ds: &DaemonSet) -> Result<Pod> {
    let object = object("DaemonSet", &ds.metadata)?;
    let spec = ds
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(&object, "spec", "is required"))?;
    template_pod(&object, "DaemonSet", &ds.metadata, &spec.template)
}

/// `Kind namespace/name`, checking the name is there.
fn object(kind: &str, meta: &ObjectMeta) -> Result<String> {
    let name = meta.name.as_deref().unwrap_or_default();
    let object = format!("{kind} {}/{name}", namespace_of(meta));
    if name.is_empty() {
        return Err(Error::invalid(&object, "metadata.name", "is required"));
    }
    Ok(object)
}

fn template_pod(
    object: &str,
    owner_kind: &str,
    meta: &ObjectMeta,
    template: &PodTemplateSpec,
) -> Result<Pod> {
    let spec = template
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(object, "spec.template.spec", "is required"))?;
    let at = At {
        object,
        prefix: "spec.template.",
    };
    let no_meta = ObjectMeta::default();
    let mut pod = from_spec(at, template.metadata.as_ref().unwrap_or(&no_meta), spec)?;
    let name = meta.name.clone().unwrap_or_default();
    pod.namespace = namespace_of(meta).to_string();
    pod.created_at = millis(meta.creation_timestamp.as_ref());
    pod.owner_kind = Some(owner_kind.to_string());
    pod.owner_name = Some(name.clone());
    pod.name = name;
    Ok(pod)
}

fn count(object: &str, field: &str, value: Option<i32>) -> Result<usize> {
    let n = value.unwrap_or(1);
    usize::try_from(n).map_err(|_| Error::invalid(object, field, format!("{n} is negative")))
}

fn replicate(template: &Pod, n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| Pod {
            name: format!("{}-{i}", template.name),
            ..template.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{chain, k8s};

    #[test]
    fn a_deployment_of_three_expands_to_three_pods_in_order() {
        let pods = pods_from_deployment(&k8s(include_str!("../fixtures/deployment.yaml"))).expect("expands");
        let keys: Vec<String> = pods.iter().map(Pod::key).collect();
        assert_eq!(keys, ["shop/web-0", "shop/web-1", "shop/web-2"]);
        for p in &pods {
            assert_eq!(p.labels["app"], "web");
            assert_eq!(p.requests.cpu(), 500);
            assert_eq!(p.owner_kind.as_deref(), Some("ReplicaSet"));
            assert_eq!(p.owner_name.as_deref(), Some("web"));
            assert_eq!(p.created_at, 1_714_564_800_000);
        }
    }

    fn workload(kind: &str, spec: &str) -> String {
        format!(
            "apiVersion: {}\nkind: {kind}\nmetadata: {{name: w}}\nspec:\n{spec}  template:\n    metadata: {{labels: {{app: w}}}}\n    spec:\n      containers: [{{name: c, image: c:1}}]\n",
            if kind == "Job" { "batch/v1" } else { "apps/v1" }
        )
    }

    #[test]
    fn replicas_default_to_one_and_stateful_set_pods_are_named_by_ordinal() {
        let rs = pods_from_replica_set(&k8s(&workload(
            "ReplicaSet",
            "  selector: {matchLabels: {app: w}}\n",
        )))
        .expect("expands");
        assert_eq!(rs.iter().map(Pod::key).collect::<Vec<_>>(), ["default/w-0"]);
        let sts = pods_from_stateful_set(&k8s(&workload(
            "StatefulSet",
            "  replicas: 2\n  selector: {matchLabels: {app: w}}\n",
        )))
        .expect("expands");
        assert_eq!(
            sts.iter().map(Pod::key).collect::<Vec<_>>(),
            ["default/w-0", "default/w-1"]
        );
        assert_eq!(sts[0].owner_kind.as_deref(), Some("StatefulSet"));
    }

    #[test]
    fn a_job_runs_parallelism_pods_capped_by_completions_and_none_when_suspended() {
        let job = |spec: &str| {
            pods_from_job(&k8s(&workload("Job", spec)))
                .expect("expands")
                .len()
        };
        assert_eq!(job(""), 1);
        assert_eq!(job("  parallelism: 4\n"), 4);
        assert_eq!(job("  parallelism: 4\n  completions: 2\n"), 2);
        assert_eq!(job("  parallelism: 4\n  suspend: true\n"), 0);
        let pods = pods_from_job(&k8s(&workload("Job", "  parallelism: 2\n"))).expect("expands");
        assert_eq!(pods[1].owner_kind.as_deref(), Some("Job"));
    }

    #[test]
    fn a_daemonset_becomes_one_template_pod_owned_by_it() {
        let pod = daemonset_pod(&k8s(&workload(
            "DaemonSet",
            "  selector: {matchLabels: {app: w}}\n",
        )))
        .expect("converts");
        assert_eq!(pod.key(), "default/w");
        assert!(pod.is_daemon());
        assert_eq!(pod.owner_name.as_deref(), Some("w"));
    }

    #[test]
    fn template_errors_name_the_workload_and_the_template_field() {
        let yaml = include_str!("../fixtures/deployment.yaml").replace("cpu: 500m", "cpu: half");
        let err = pods_from_deployment(&k8s(&yaml)).expect_err("bad quantity");
        let err = chain(&err);
        assert!(
            err.starts_with("Deployment shop/web: spec.template.spec.containers[0].resources.requests.cpu: "),
            "{err}"
        );
        assert!(err.contains("\"half\""), "{err}");
        let err = pods_from_deployment(&k8s(&workload("Deployment", "  replicas: -1\n  selector: {}\n")))
            .expect_err("negative");
        assert_eq!(chain(&err), "Deployment default/w: spec.replicas: -1 is negative");
    }
}
