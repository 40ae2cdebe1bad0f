//! Test support: an in-process API server on a random port with a fresh store and throwaway
//! certificates, and a kube-rs client authenticated with a bearer token.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use skiff_apiserver::alloc::Ipv4Cidr;
use skiff_apiserver::{ApiConfig, RunningServer, ServerOptions, StaticToken, TlsMaterial};
use skiff_store::{RedbConfig, RedbStore, Store};

pub const TOKEN: &str = "test-admin-token";

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    pub tls: TlsMaterial,
    pub addr: SocketAddr,
}

fn pki() -> (String, TlsMaterial) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let issuer = rcgen::Issuer::from_ca_cert_der(ca.der(), ca_key).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_pem = ca.pem();
    (ca_pem.clone(), TlsMaterial { cert_pem: cert.pem(), key_pem: key.serialize_pem(), client_ca_pem: ca_pem })
}

async fn start_on(dir: &std::path::Path, tls: TlsMaterial, port: u16) -> RunningServer {
    // After a shutdown the previous server's tasks release the database asynchronously.
    let mut attempts = 0;
    let store = loop {
        match RedbStore::open(RedbConfig::new(dir.join("db"))) {
            Ok(s) => break s,
            Err(e) if attempts < 100 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot reopen the store: {e}"),
        }
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let opts = ServerOptions {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        tls,
        api: ApiConfig {
            service_cidr: Ipv4Cidr::parse("10.43.0.0/16").unwrap(),
            node_port_range: (30000, 32767),
            cluster_domain: "cluster.local".into(),
            advertise_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 6443,
            pod_security: Default::default(),
        },
        tokens: vec![StaticToken { token: TOKEN.into(), user: "admin".into(), groups: vec!["system:masters".into()] }],
        kubelet_client: None,
        audit: None,
        service_account_key_pem: None,
        service_account_admission: false,
        api_audiences: Vec::new(),
        metric_resolution: std::time::Duration::from_secs(15),
    };
    skiff_apiserver::start(store, opts).await.unwrap()
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, tls) = pki();
        let server = start_on(dir.path(), tls.clone(), 0).await;
        let addr = server.local_addr;
        Self { server: Some(server), dir, ca_pem, tls, addr }
    }

    /// Stops the server and starts a new one on the same data and port.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.server = Some(start_on(self.dir.path(), self.tls.clone(), self.addr.port()).await);
    }

    pub async fn client(&self) -> kube::Client {
        self.client_with(true).await
    }

    /// A client that answers 429s to the caller instead of retrying them.
    #[allow(dead_code)]
    pub async fn client_without_retries(&self) -> kube::Client {
        self.client_with(false).await
    }

    async fn client_with(&self, retries: bool) -> kube::Client {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {TOKEN}\ncontexts:\n- name: c\n  context:\n    cluster: t\n    user: u\ncurrent-context: c\n",
            self.addr.port()
        );
        let kc = Kubeconfig::from_yaml(&yaml).unwrap();
        let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.unwrap();
        config.default_retry = retries;
        kube::Client::try_from(config).unwrap()
    }
}
