//! The controller manager: the workload controllers over one set of shared informers, run only
//! while this process leads through the Lease `kube-system/kube-controller-manager`.
//!
//! What does not live here: the controllers themselves (one module each) and the namespace and
//! node IPAM controllers, which run outside leader election (see [`crate::start`]).

use crate::informer::SharedInformers;
use crate::leader::{self, LeaderConfig};
use crate::replicaset::{self, Flavor};
use crate::{
    ClientConfig, cronjob, deployment, endpoints, endpointslice, gc, job, rootca, serviceaccount, statefulset,
    ttlafterfinished,
};

/// The Lease the controller manager elects its leader with.
pub const LEASE_NAME: &str = "kube-controller-manager";

/// Campaigns for leadership and runs the controllers while leading.
pub async fn run(client: kube::Client, cfg: ClientConfig, identity: String) {
    let lease = LeaderConfig::new("kube-system", LEASE_NAME, &identity);
    leader::run(client.clone(), lease, || run_controllers(client.clone(), cfg.ca_pem.clone())).await;
}

/// Runs every controller over fresh shared informers until dropped; `ca_pem` is the cluster CA
/// the root CA publisher distributes.
pub async fn run_controllers(client: kube::Client, ca_pem: String) {
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
    let sts = statefulset::controller(client.clone(), informers.clone());
    futures::join!(informers.clone().run(), rs, rc, deploy, gc, sa, ca, ep, eps, jobs, ttl, cronjobs, sts);
}
