//! The IDX format (LeCun's MNIST files): magic `00 00 08 <rank>`, `rank` big-endian u32
//! dimensions, then the unsigned bytes. Files may be gzipped; we look at the bytes, not
//! the file name, to decide.

use crate::error::DataError;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UBYTE_TYPE: u8 = 0x08;

/// Reads an IDX file, gunzipping it first if it starts with the gzip magic.
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_idx(raw, path)
}

/// Decodes IDX bytes as read from a file: gunzipped first if they start with the gzip
/// magic. `path` only names the source in errors.
pub fn decode_idx(raw: Vec<u8>, path: &Path) -> Result<IdxArray, DataError> {
    let bytes = gunzip_if_needed(path, raw)?;
    parse_idx(&bytes, path)
}

/// Gunzips IDX bytes, reading no more than the IDX header inside promises (a stream
/// that decompresses to more, such as a gzip bomb, is an error as soon as it passes
/// that size, not after it has filled the memory).
pub(crate) fn gunzip_if_needed(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let corrupt = |e: std::io::Error| DataError::BadMagic {
        path: path.to_path_buf(),
        detail: format!("gzip stream is corrupt or truncated ({e})"),
    };
    let mut stream = GzDecoder::new(raw.as_slice());
    let mut out = Vec::new();
    // The magic and rank, then the dimensions: together they give the whole size.
    (&mut stream)
        .take(4)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let rank = match out.as_slice() {
        [0, 0, UBYTE_TYPE, rank] => usize::from(*rank),
        // Not IDX inside, or too short to tell: parse_idx says what is wrong.
        _ => return parse_idx(&out, path).map(|_| out),
    };
    (&mut stream)
        .take(4 * rank as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let Some(promised) = idx_size(&out) else {
        return parse_idx(&out, path).map(|_| out);
    };
    let limit = (promised - out.len()) as u64;
    (&mut stream)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() > promised {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            detail: format!(
                "the gzip stream holds more than the {promised} bytes its IDX header gives"
            ),
        });
    }
    Ok(out)
}

/// The size in bytes, header included, of the IDX file whose complete header starts
/// `bytes`, if it can be told (and does not overflow).
fn idx_size(bytes: &[u8]) -> Option<usize> {
    let rank = usize::from(*bytes.get(3)?);
    let dims = bytes.get(4..4 + 4 * rank)?;
    dims.chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .try_fold(1usize, |acc, d| acc.checked_mul(d))?
        .checked_add(4 + 4 * rank)
}

/// Parses uncompressed IDX bytes; `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    let bad = |detail: String| DataError::BadMagic {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.len() < 4 {
        return Err(bad(format!("only {} bytes long", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != UBYTE_TYPE || bytes[3] == 0 {
        return Err(bad(format!(
            "magic number {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 <rank>",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            actual: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let actual = bytes.len() - header;
    if actual != expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an IDX array (tests and tools that write small datasets use this).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, UBYTE_TYPE, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn p() -> &'static Path {
        Path::new("x.idx")
    }

    /// A small header over a huge stream of zeros (a gzip bomb, or a wrong header):
    /// refused once past the header's size, never decompressed whole.
    #[test]
    fn a_gzip_stream_longer_than_its_header_promises_is_refused() {
        let mut bomb = encode_idx(&[10], &[0; 10]);
        bomb.resize(64 << 20, 0);
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&bomb).unwrap();
        let compressed = gz.finish().unwrap();
        assert!(
            compressed.len() < 1 << 20,
            "a bomb: {} bytes",
            compressed.len()
        );
        let e = decode_idx(compressed, p()).unwrap_err().to_string();
        assert!(
            e.contains("more than the 18 bytes its IDX header gives"),
            "{e}"
        );

        // Exactly what the header gives decodes as before.
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]))
            .unwrap();
        let a = decode_idx(gz.finish().unwrap(), p()).unwrap();
        assert_eq!((a.dims, a.data), (vec![2, 3], vec![1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn parses_a_rank_3_array() {
        let bytes = encode_idx(&[2, 2, 3], &(0..12).collect::<Vec<u8>>());
        let a = parse_idx(&bytes, p()).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 11);
    }

    #[test]
    fn reads_gzipped_and_plain_files_alike() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode_idx(&[3], &[7, 8, 9]);
        let plain = dir.path().join("a");
        std::fs::write(&plain, &bytes).unwrap();
        let gz = dir.path().join("a.gz");
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&bytes).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_idx(&plain).unwrap(), read_idx(&gz).unwrap());
    }

    #[test]
    fn rejects_bad_magic() {
        let mut bytes = encode_idx(&[3], &[1, 2, 3]);
        bytes[2] = 0x0d; // float data
        let e = parse_idx(&bytes, p()).unwrap_err().to_string();
        assert!(e.contains("x.idx") && e.contains("magic"), "{e}");
        assert!(parse_idx(&[0, 0], p()).is_err());
    }

    #[test]
    fn rejects_truncated_data_and_header() {
        let bytes = encode_idx(&[4], &[1, 2, 3, 4]);
        let e = parse_idx(&bytes[..bytes.len() - 1], p()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    expected: 4,
                    actual: 3,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_idx(&bytes[..6], p()).unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
        let mut long = bytes.clone();
        long.push(0);
        assert!(parse_idx(&long, p()).is_err());
    }

    #[test]
    fn rejects_truncated_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&encode_idx(&[1000], &[5; 1000])).unwrap();
        let gz = enc.finish().unwrap();
        let path = dir.path().join("t.gz");
        std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let e = read_idx(&path).unwrap_err().to_string();
        assert!(e.contains("t.gz") && e.contains("gzip"), "{e}");
    }
}
