//! Recognising and undoing the compression of tarballs and layers (gzip, zstd, or none) from
//! their first bytes, whatever their name or media type claims.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use super::ImageError;

/// A stream's compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Reads the first bytes of a seekable stream and rewinds it.
pub fn sniff<R: Read + Seek>(reader: &mut R) -> Result<Compression, ImageError> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ImageError::archive(e)),
        }
    }
    reader.seek(SeekFrom::Start(0)).map_err(ImageError::archive)?;
    Ok(detect(&head[..n]))
}

/// Wraps `reader` in the decoder its first bytes call for.
pub fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>, ImageError> {
    let mut buffered = BufReader::with_capacity(1 << 20, reader);
    let head = buffered.fill_buf().map_err(ImageError::archive)?;
    Ok(match detect(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(ImageError::archive)?),
        Compression::None => Box::new(buffered),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trips_every_kind() {
        let data = b"tar bytes".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&data[..], 1).expect("zstd");
        for (bytes, kind) in [(gz, Compression::Gzip), (zst, Compression::Zstd), (data.clone(), Compression::None)] {
            assert_eq!(sniff(&mut io::Cursor::new(&bytes)).expect("sniff"), kind);
            let mut out = Vec::new();
            decompress(&bytes[..]).expect("open").read_to_end(&mut out).expect("read");
            assert_eq!(out, data);
        }
    }
}
