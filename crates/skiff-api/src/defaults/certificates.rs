//! Registry strategy of CertificateSigningRequest: a new request starts without status, and the
//! main resource can change neither spec nor status (upstream `csrStrategy`). The requesting
//! user is written into the spec by the API server's admission, which knows who asks; the
//! `/status` and `/approval` preparations live there too.

use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestStatus};

use crate::kinds::{Defaulting, Strategy};

impl Defaulting for CertificateSigningRequest {}

impl Strategy for CertificateSigningRequest {
    fn prepare_for_create(&mut self) {
        self.status = Some(CertificateSigningRequestStatus::default());
    }

    fn prepare_for_update(&mut self, old: &Self) {
        self.spec = old.spec.clone();
        self.status = old.status.clone();
    }
}
