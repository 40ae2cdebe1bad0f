//! The controller manager: the workload controllers over one set of shared informers, and the
//! CSR signers, approver and cleaner over their own CSR watch, run only while this process leads
//! through the Lease `kube-system/kube-controller-manager`.
//!
//! What does not live here: the controllers themselves (one module each) and the namespace and
//! node IPAM controllers, which run outside leader election (see [`crate::start`]).

use crate::certificates::{self, CertificatesConfig};
use crate::informer::SharedInformers;
use crate::leader::{self, LeaderConfig};
use crate::replicaset::{self, Flavor};
use crate::volume::localpath::LocalPathConfig;
use crate::{
    ClientConfig, cronjob, daemonset, deployment, disruption, endpoints, endpointslice, gc, hpa, job, nodehealth,
    resourcequota, rootca, serviceaccount, statefulset, tainteviction, ttlafterfinished, volume,
};

/// The Lease the controller manager elects its leader with.
pub const LEASE_NAME: &str = "kube-controller-manager";

/// Campaigns for leadership and runs the controllers while leading.
pub async fn run(
    client: kube::Client,
    cfg: ClientConfig,
    identity: String,
    local_path: LocalPathConfig,
    health: nodehealth::NodeHealthConfig,
    signing: CertificatesConfig,
) {
    let lease = LeaderConfig::new("kube-system", LEASE_NAME, &identity);
    leader::run(client.clone(), lease, || {
        run_controllers(client.clone(), cfg.ca_pem.clone(), local_path.clone(), health, signing.clone())
    })
    .await;
}

/// Runs every controller over fresh shared informers until dropped; `ca_pem` is the cluster CA
/// the root CA publisher distributes, `local_path` where the local-path provisioner makes volumes,
/// `health` the node health settings, `signing` what the CSR signers sign with.
pub async fn run_controllers(
    client: kube::Client,
    ca_pem: String,
    local_path: LocalPathConfig,
    health: nodehealth::NodeHealthConfig,
    signing: CertificatesConfig,
) {
    let informers = SharedInformers::new(&client);
    let rs = replicaset::controller(Flavor::ReplicaSet, client.clone(), informers.clone());
    let rc = replicaset::controller(Flavor::ReplicationController, client.clone(), informers.clone());
    let deploy = deployment::controller(client.clone(), informers.clone());
    let gc = gc::controller(client.clone(), informers.clone());
    let sa = serviceaccount::controller(client.clone(), informers.clone());
    let ca = rootca::controller(client.clone(), informers.clone(), ca_pem);
    let ep = endpoints::controller(client.clone(), informers.clone());
    let eps = endpointslice::controller(client.clone(), informers.clone());
    let jobs = job::controller(client.clone(), informers.clone());
    let ttl = ttlafterfinished::controller(client.clone(), informers.clone());
    let cronjobs = cronjob::controller(client.clone(), informers.clone());
    let metrics = std::sync::Arc::new(hpa::metrics::ResourceMetricsApi::new(client.clone()));
    let hpas = hpa::controller(client.clone(), informers.clone(), metrics);
    let quotas = resourcequota::controller(client.clone(), informers.clone());
    let daemonsets = daemonset::controller(client.clone(), informers.clone());
    let pv = volume::binder::controller(client.clone(), informers.clone());
    let protection = volume::protection::controller(client.clone(), informers.clone());
    let provisioner = volume::localpath::controller(client.clone(), informers.clone(), local_path);
    let pdbs = disruption::controller(client.clone(), informers.clone());
    let nodes = nodehealth::controller(client.clone(), informers.clone(), health);
    let taints = tainteviction::controller(client.clone(), informers.clone());
    let sts = statefulset::controller(client.clone(), informers.clone());
    let csrs = certificates::run(client.clone(), signing);
    futures::join!(
        informers.clone().run(),
        rs,
        rc,
        deploy,
        gc,
        sa,
        ca,
        ep,
        eps,
        jobs,
        ttl,
        cronjobs,
        hpas,
        quotas,
        daemonsets,
        pv,
        protection,
        provisioner,
        pdbs,
        nodes,
        taints,
        sts,
        csrs
    );
}
