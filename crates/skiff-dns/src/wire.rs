//! The DNS wire format on the hot path: reading a query's header and question without
//! allocating, and assembling a response from the query's question and precomputed record
//! bytes. Owner names of answers point at the question (offset 12), so one precomputed answer
//! serves every spelling of the name.
//!
//! What does not live here: which records a name has ([`crate::zone`]), forwarding
//! ([`crate::forward`]).

/// Most bytes of a UDP response without EDNS.
pub const UDP_MAX: usize = 512;
/// Most bytes of a UDP response we send with EDNS, whatever the client offers.
pub const EDNS_MAX: usize = 1232;

/// Record types.
pub mod rtype {
    /// A.
    pub const A: u16 = 1;
    /// NS.
    pub const NS: u16 = 2;
    /// CNAME.
    pub const CNAME: u16 = 5;
    /// SOA.
    pub const SOA: u16 = 6;
    /// PTR.
    pub const PTR: u16 = 12;
    /// AAAA.
    pub const AAAA: u16 = 28;
    /// SRV.
    pub const SRV: u16 = 33;
    /// OPT (EDNS).
    pub const OPT: u16 = 41;
}

/// Response codes.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Server failure.
    pub const SERVFAIL: u8 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
}

/// The class IN.
pub const CLASS_IN: u16 = 1;

/// A parsed query (borrowing the packet).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The message ID.
    pub id: u16,
    /// The header flags.
    pub flags: u16,
    /// The question as sent: name, type and class.
    pub question: &'a [u8],
    /// Length of the name in the lowercase buffer.
    pub name_len: usize,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The UDP payload size offered by EDNS, if the query has an OPT record.
    pub edns: Option<u16>,
}

impl Query<'_> {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
}

/// Why a packet is not a query we can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Too short or malformed to answer at all: dropped.
    Garbage,
    /// A header we can answer with FORMERR (ID known).
    Format(u16),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses `packet`'s header and single question; the name, lowercased, goes into `lower`.
pub fn parse<'a>(packet: &'a [u8], lower: &mut [u8; 256]) -> Result<Query<'a>, ParseError> {
    let id = be16(packet, 0).ok_or(ParseError::Garbage)?;
    let flags = be16(packet, 2).ok_or(ParseError::Garbage)?;
    if flags & 0x8000 != 0 {
        return Err(ParseError::Garbage); // a response
    }
    let qdcount = be16(packet, 4).ok_or(ParseError::Garbage)?;
    let arcount = be16(packet, 10).ok_or(ParseError::Garbage)?;
    if qdcount != 1 {
        return Err(ParseError::Format(id));
    }
    let mut at = 12;
    let mut len = 0;
    loop {
        let l = *packet.get(at).ok_or(ParseError::Format(id))? as usize;
        if l > 63 || len + l + 1 > 255 {
            return Err(ParseError::Format(id)); // compression or oversize in a question
        }
        let label = packet.get(at..at + 1 + l).ok_or(ParseError::Format(id))?;
        for (dst, src) in lower[len..len + 1 + l].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        len += 1 + l;
        at += 1 + l;
        if l == 0 {
            break;
        }
    }
    let qtype = be16(packet, at).ok_or(ParseError::Format(id))?;
    let qclass = be16(packet, at + 2).ok_or(ParseError::Format(id))?;
    let question = &packet[12..at + 4];
    let mut edns = None;
    if arcount == 1 && be16(packet, 4).is_some() {
        // An OPT record: root name, type 41, class = payload size.
        let opt = at + 4;
        if packet.get(opt) == Some(&0) && be16(packet, opt + 1) == Some(rtype::OPT) {
            edns = be16(packet, opt + 3);
        }
    }
    Ok(Query { id, flags, question, name_len: len, qtype, qclass, edns })
}

/// Precomputed answer and additional records of one name and type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    /// Records in the answer section.
    pub an: u16,
    /// Records in the additional section (after the answers in `bytes`).
    pub ar: u16,
    /// The records, owner names of answers pointing at the question.
    pub bytes: Box<[u8]>,
}

/// What goes into a response besides the question.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sections<'a> {
    /// The response code.
    pub rcode: u8,
    /// Authoritative answer.
    pub aa: bool,
    /// Answer (and additional) records.
    pub answer: Option<&'a Answer>,
    /// One record for the authority section (the zone's SOA in negative answers).
    pub authority: Option<&'a [u8]>,
}

/// Writes the response to `q` into `out` (cleared first). Over UDP (`udp`), a response larger
/// than the client accepts is truncated to its question with TC set.
pub fn respond(out: &mut Vec<u8>, q: &Query<'_>, s: Sections<'_>, udp: bool) {
    out.clear();
    let max = match q.edns {
        Some(size) => usize::from(size).clamp(UDP_MAX, EDNS_MAX),
        None => UDP_MAX,
    };
    let (an, ar) = s.answer.map_or((0, 0), |a| (a.an, a.ar));
    let ns = u16::from(s.authority.is_some());
    let opt = u16::from(q.edns.is_some());
    let flags = |tc: bool| -> u16 {
        0x8000
            | (q.flags & 0x7800) // opcode
            | if s.aa { 0x0400 } else { 0 }
            | if tc { 0x0200 } else { 0 }
            | (q.flags & 0x0100) // RD
            | 0x0080 // RA
            | (q.flags & 0x0010) // CD
            | u16::from(s.rcode & 0xf)
    };
    let header = |out: &mut Vec<u8>, tc: bool, an: u16, ns: u16, ar: u16| {
        out.extend_from_slice(&q.id.to_be_bytes());
        out.extend_from_slice(&flags(tc).to_be_bytes());
        for n in [1, an, ns, ar] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(q.question);
    };
    header(out, false, an, ns, ar + opt);
    if let Some(a) = s.answer {
        out.extend_from_slice(&a.bytes);
    }
    if let Some(soa) = s.authority {
        out.extend_from_slice(soa);
    }
    // OPT: root name, type, our payload size, no extended rcode or flags, no options.
    let opt_rr = |out: &mut Vec<u8>| {
        if opt == 1 {
            out.extend_from_slice(&[0, 0, 41]);
            out.extend_from_slice(&(EDNS_MAX as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
    };
    opt_rr(out);
    if udp && out.len() > max {
        out.clear();
        header(out, true, 0, 0, opt);
        opt_rr(out);
    }
}

/// Writes the error response `rcode` to the query with `id`, `flags` (no question).
pub fn error_response(out: &mut Vec<u8>, id: u16, flags: u16, rcode: u8) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    let flags = 0x8000 | (flags & 0x7900) | 0x0080 | u16::from(rcode & 0xf);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}

/// The wire form of a dotted name (lowercased; a trailing dot is optional).
pub fn name(dotted: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(dotted.len() + 2);
    for label in dotted.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(63)];
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// Whether wire name `name` is `apex` or below it.
pub fn within(name: &[u8], apex: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        if name[at..] == *apex {
            return true;
        }
        at += 1 + name[at] as usize;
    }
    false
}

/// One resource record: `owner` (wire bytes, or a pointer), type, class IN, TTL, RDATA.
pub fn record(out: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// The pointer to the question's name.
pub const QNAME_POINTER: [u8; 2] = [0xc0, 0x0c];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        for label in name.split('.') {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&[0, 1]);
        if edns {
            p.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        }
        p
    }

    #[test]
    fn parses_and_lowercases_the_question() {
        let p = query("Web.Default", rtype::A, true);
        let mut lower = [0; 256];
        let q = parse(&p, &mut lower).unwrap();
        assert_eq!((q.id, q.qtype, q.qclass, q.edns), (0x1234, 1, 1, Some(4096)));
        assert_eq!(&lower[..q.name_len], &name("web.default")[..]);
        assert_eq!(&q.question[1..4], b"Web");
        assert!(matches!(parse(&p[..5], &mut lower), Err(ParseError::Garbage)));
    }

    #[test]
    fn oversized_udp_answers_are_truncated() {
        let p = query("a", rtype::A, false);
        let mut lower = [0; 256];
        let q = parse(&p, &mut lower).unwrap();
        let answer = Answer { an: 1, ar: 0, bytes: vec![0; 600].into() };
        let mut out = Vec::new();
        respond(&mut out, &q, Sections { answer: Some(&answer), aa: true, ..Default::default() }, true);
        assert_eq!(out.len(), 12 + q.question.len());
        assert_eq!(out[2] & 0x02, 0x02, "TC");
        respond(&mut out, &q, Sections { answer: Some(&answer), aa: true, ..Default::default() }, false);
        assert_eq!(out.len(), 12 + q.question.len() + 600);
    }

    #[test]
    fn within_follows_label_boundaries() {
        let zone = name("cluster.local");
        assert!(within(&name("web.default.svc.cluster.local"), &zone));
        assert!(within(&zone, &zone));
        assert!(!within(&name("xcluster.local"), &zone));
    }
}
