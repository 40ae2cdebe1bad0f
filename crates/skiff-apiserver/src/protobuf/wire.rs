//! Protobuf wire-format reading: varints, tags and the four wire types Kubernetes uses, plus
//! [`Path`], the allocation-free field path errors name.

use std::fmt;

use super::ProtoError;

/// A field path such as `spec.template.spec.containers[0].ports[1].targetPort`, built as a
/// linked list on the stack while decoding.
#[derive(Clone, Copy)]
pub(crate) struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    seg: Seg<'p>,
}

#[derive(Clone, Copy)]
enum Seg<'p> {
    Root,
    Field(&'p str),
    Number(u32),
    Index(usize),
    Key(&'p str),
}

impl<'p> Path<'p> {
    /// The path of the top-level object.
    pub(crate) const ROOT: Path<'static> = Path { parent: None, seg: Seg::Root };

    /// A named field below this path.
    pub(crate) fn field(&'p self, name: &'p str) -> Path<'p> {
        Path { parent: Some(self), seg: Seg::Field(name) }
    }

    /// A field the schema does not know, by number.
    pub(crate) fn number(&'p self, number: u32) -> Path<'p> {
        Path { parent: Some(self), seg: Seg::Number(number) }
    }

    /// A list element below this path.
    pub(crate) fn index(&'p self, index: usize) -> Path<'p> {
        Path { parent: Some(self), seg: Seg::Index(index) }
    }

    /// A map entry below this path.
    pub(crate) fn key(&'p self, key: &'p str) -> Path<'p> {
        Path { parent: Some(self), seg: Seg::Key(key) }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(parent) = self.parent else { return f.write_str("<object>") };
        let top = parent.parent.is_none();
        if !top {
            parent.fmt(f)?;
        }
        match self.seg {
            Seg::Root => Ok(()),
            Seg::Field(name) if top => f.write_str(name),
            Seg::Field(name) => write!(f, ".{name}"),
            Seg::Number(n) if top => write!(f, "#{n}"),
            Seg::Number(n) => write!(f, ".#{n}"),
            Seg::Index(i) => write!(f, "[{i}]"),
            Seg::Key(k) => write!(f, "[{k:?}]"),
        }
    }
}

impl Path<'_> {
    /// Renders the path for an error message.
    pub(crate) fn render(&self) -> String {
        self.to_string()
    }
}

/// One field value as it appears on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl WireValue<'_> {
    /// The wire type number, for error messages.
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            Self::Varint(_) => 0,
            Self::Fixed64(_) => 1,
            Self::Bytes(_) => 2,
            Self::Fixed32(_) => 5,
        }
    }
}

/// A cursor over one message's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from the start.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Whether every byte was consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads a base-128 varint (at most ten bytes).
    pub(crate) fn varint(&mut self, path: &Path<'_>) -> Result<u64, ProtoError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ProtoError::Truncated { path: path.render(), what: "varint".into() });
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(ProtoError::Malformed { path: path.render(), reason: "varint overflows 64 bits".into() });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::Malformed { path: path.render(), reason: "varint longer than 10 bytes".into() })
    }

    fn take(&mut self, n: usize, what: &str, path: &Path<'_>) -> Result<&'a [u8], ProtoError> {
        let remaining = self.buf.len() - self.pos;
        if n > remaining {
            return Err(ProtoError::Truncated {
                path: path.render(),
                what: format!("{what} of {n} bytes with only {remaining} left"),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Reads a little-endian 64-bit value.
    pub(crate) fn fixed64(&mut self, path: &Path<'_>) -> Result<u64, ProtoError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, "fixed64", path)?);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a little-endian 32-bit value.
    pub(crate) fn fixed32(&mut self, path: &Path<'_>) -> Result<u32, ProtoError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4, "fixed32", path)?);
        Ok(u32::from_le_bytes(a))
    }

    /// Reads the next field's tag and value; `path` is the enclosing message's path.
    pub(crate) fn field(&mut self, path: &Path<'_>) -> Result<(u32, WireValue<'a>), ProtoError> {
        let (number, wire_type) = self.tag(path)?;
        Ok((number, self.value(wire_type, &path.number(number))?))
    }

    /// Reads a field tag: the field number and wire type.
    pub(crate) fn tag(&mut self, path: &Path<'_>) -> Result<(u32, u8), ProtoError> {
        let tag = self.varint(path)?;
        let number = u32::try_from(tag >> 3).ok().filter(|&n| n != 0 && n < (1 << 29)).ok_or_else(|| {
            ProtoError::Malformed { path: path.render(), reason: format!("invalid field number in tag {tag:#x}") }
        })?;
        Ok((number, (tag & 7) as u8))
    }

    /// Reads a value of `wire_type`; `path` names the field it belongs to.
    pub(crate) fn value(&mut self, wire_type: u8, path: &Path<'_>) -> Result<WireValue<'a>, ProtoError> {
        Ok(match wire_type {
            0 => WireValue::Varint(self.varint(path)?),
            1 => WireValue::Fixed64(self.fixed64(path)?),
            2 => {
                let len = self.varint(path)?;
                let len = usize::try_from(len).map_err(|_| ProtoError::Malformed {
                    path: path.render(),
                    reason: format!("length {len} does not fit in memory"),
                })?;
                WireValue::Bytes(self.take(len, "length-delimited value", path)?)
            }
            5 => WireValue::Fixed32(self.fixed32(path)?),
            other => {
                return Err(ProtoError::Malformed {
                    path: path.render(),
                    reason: format!("unsupported wire type {other} (groups are not used by Kubernetes)"),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_reads_ten_byte_negative_values() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let v = Reader::new(&bytes).varint(&Path::ROOT).expect("varint");
        assert_eq!(v as i64, -1);
    }

    #[test]
    fn varint_rejects_overflow_and_truncation() {
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(matches!(Reader::new(&over).varint(&Path::ROOT), Err(ProtoError::Malformed { .. })));
        assert!(matches!(Reader::new(&[0x80]).varint(&Path::ROOT), Err(ProtoError::Truncated { .. })));
    }

    #[test]
    fn path_renders_fields_indexes_and_keys() {
        let root = Path::ROOT;
        let spec = root.field("spec");
        let c = spec.field("containers");
        let c0 = c.index(0);
        let res = c0.field("resources");
        let cpu = res.key("cpu");
        assert_eq!(cpu.render(), r#"spec.containers[0].resources["cpu"]"#);
        assert_eq!(root.render(), "<object>");
        assert_eq!(root.number(7).render(), "#7");
    }
}
