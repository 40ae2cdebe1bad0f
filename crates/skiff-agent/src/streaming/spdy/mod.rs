//! SPDY/3.1 as the Kubernetes streaming clients speak it (`moby/spdystream`): [`frame`] is the
//! wire format with its header compression, [`session`] runs a server-side connection (streams
//! opened by the client, each accepted at once, their data delivered to whoever took them).

pub mod frame;
pub mod session;
