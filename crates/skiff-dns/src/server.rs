//! Serving: UDP workers sharing one socket and a TCP listener (length-prefixed messages, one
//! task per connection), both answering from the current [`Zone`] snapshot without locks on
//! the hot path (each worker keeps its own `Arc` and re-reads the shared one when the
//! generation changes), and handing names that are not the cluster's to the [`Forwarder`].
//!
//! What does not live here: computing the zone, talking to the API server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::forward::Forwarder;
use crate::wire::{self, CLASS_IN, ParseError, Sections, rcode};
use crate::zone::{Lookup, Zone};

/// The zone being served, swapped whole when the objects change.
#[derive(Debug, Default)]
pub struct ZoneHandle {
    current: RwLock<Arc<Zone>>,
    generation: AtomicU64,
}

impl ZoneHandle {
    /// Replaces the served zone.
    pub fn swap(&self, zone: Zone) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(zone);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn load(&self) -> (u64, Arc<Zone>) {
        let generation = self.generation.load(Ordering::Acquire);
        (generation, self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// A worker's view of the zone, refreshed when it changes.
struct View {
    handle: Arc<ZoneHandle>,
    generation: u64,
    zone: Arc<Zone>,
}

impl View {
    fn new(handle: Arc<ZoneHandle>) -> Self {
        let (generation, zone) = handle.load();
        Self { handle, generation, zone }
    }

    fn zone(&mut self) -> &Zone {
        if self.handle.generation.load(Ordering::Acquire) != self.generation {
            (self.generation, self.zone) = self.handle.load();
        }
        &self.zone
    }
}

/// What to do with a query.
pub enum Outcome {
    /// `out` holds the response.
    Respond,
    /// Forward it (the name is not ours).
    Forward {
        /// Its ID.
        id: u16,
        /// The lowercase name length in the lower buffer.
        name_len: usize,
        /// QTYPE.
        qtype: u16,
        /// QCLASS.
        qclass: u16,
        /// Its flags.
        flags: u16,
    },
    /// Nothing to answer.
    Drop,
}

/// Answers `packet` from `zone` into `out`, or says it must be forwarded.
pub fn answer(zone: &Zone, packet: &[u8], lower: &mut [u8; 256], out: &mut Vec<u8>, udp: bool) -> Outcome {
    let q = match wire::parse(packet, lower) {
        Ok(q) => q,
        Err(ParseError::Garbage) => return Outcome::Drop,
        Err(ParseError::Format(id)) => {
            wire::error_response(out, id, 0, rcode::FORMERR);
            return Outcome::Respond;
        }
    };
    if q.opcode() != 0 {
        wire::error_response(out, q.id, q.flags, rcode::NOTIMP);
        return Outcome::Respond;
    }
    let lookup = zone.lookup(&lower[..q.name_len], q.qtype);
    let sections = match lookup {
        Lookup::NotOurs => {
            return Outcome::Forward {
                id: q.id,
                name_len: q.name_len,
                qtype: q.qtype,
                qclass: q.qclass,
                flags: q.flags,
            };
        }
        _ if q.qclass != CLASS_IN => Sections { rcode: rcode::REFUSED, ..Default::default() },
        Lookup::Answer(a) => Sections { aa: true, answer: Some(a), ..Default::default() },
        Lookup::NoData(soa) => Sections { aa: true, authority: Some(soa), ..Default::default() },
        Lookup::NxDomain(soa) => {
            Sections { aa: true, rcode: rcode::NXDOMAIN, authority: Some(soa), ..Default::default() }
        }
    };
    wire::respond(out, &q, sections, udp);
    Outcome::Respond
}

/// Serves UDP on `socket` with `workers` tasks.
pub fn serve_udp(socket: UdpSocket, handle: Arc<ZoneHandle>, forwarder: Arc<Forwarder>, workers: usize) {
    let socket = Arc::new(socket);
    for _ in 0..workers.max(1) {
        let (socket, handle, forwarder) = (socket.clone(), handle.clone(), forwarder.clone());
        tokio::spawn(async move {
            let mut view = View::new(handle);
            let mut buf = vec![0u8; 4096];
            let mut out = Vec::with_capacity(1232);
            let mut lower = [0u8; 256];
            loop {
                let (n, peer) = match socket.recv_from(&mut buf).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::debug!(error = %e, "dns udp receive failed");
                        continue;
                    }
                };
                let packet = &buf[..n];
                match answer(view.zone(), packet, &mut lower, &mut out, true) {
                    Outcome::Respond => {
                        let _ = socket.send_to(&out, peer).await;
                    }
                    Outcome::Forward { id, name_len, qtype, qclass, flags } => {
                        let (socket, forwarder, packet, lname) =
                            (socket.clone(), forwarder.clone(), packet.to_vec(), lower[..name_len].to_vec());
                        tokio::spawn(async move {
                            let mut response = match forwarder.resolve(&packet, id, &lname, qtype, qclass).await {
                                Some(r) => r,
                                None => {
                                    let mut out = Vec::new();
                                    wire::error_response(&mut out, id, flags, rcode::SERVFAIL);
                                    out
                                }
                            };
                            if response.len() > wire::EDNS_MAX {
                                // Too big for UDP: the client retries over TCP.
                                response.truncate(12);
                                response[2] |= 0x02;
                                response[4..12].fill(0);
                            }
                            let _ = socket.send_to(&response, peer).await;
                        });
                    }
                    Outcome::Drop => {}
                }
            }
        });
    }
}

/// Serves TCP on `listener`.
pub fn serve_tcp(listener: TcpListener, handle: Arc<ZoneHandle>, forwarder: Arc<Forwarder>) {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "dns tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (handle, forwarder) = (handle.clone(), forwarder.clone());
            tokio::spawn(async move {
                let _ = serve_connection(stream, handle, forwarder).await;
            });
        }
    });
}

async fn serve_connection(
    mut stream: TcpStream,
    handle: Arc<ZoneHandle>,
    forwarder: Arc<Forwarder>,
) -> std::io::Result<()> {
    let mut view = View::new(handle);
    let mut lower = [0u8; 256];
    let mut out = Vec::new();
    loop {
        let len = match tokio::time::timeout(Duration::from_secs(10), stream.read_u16()).await {
            Ok(Ok(len)) => len,
            _ => return Ok(()),
        };
        let mut packet = vec![0u8; usize::from(len)];
        stream.read_exact(&mut packet).await?;
        match answer(view.zone(), &packet, &mut lower, &mut out, false) {
            Outcome::Respond => {}
            Outcome::Forward { id, name_len, qtype, qclass, flags } => {
                match forwarder.resolve(&packet, id, &lower[..name_len], qtype, qclass).await {
                    Some(r) => out = r,
                    None => wire::error_response(&mut out, id, flags, rcode::SERVFAIL),
                }
            }
            Outcome::Drop => return Ok(()),
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
    }
}

/// Binds UDP and TCP on `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    Ok((UdpSocket::bind(addr).await?, TcpListener::bind(addr).await?))
}
