//! Frames on the wire: a 4-byte big-endian length, a 32-byte HMAC-SHA256 tag over the body
//! keyed with the cluster key, and the body: one byte of format version, the JSON's length
//! (4 bytes, big-endian), the message as JSON, and then its bulk bytes (a log, a database, a
//! message body) as they are — a megabyte of log neither grows by a third in base64 nor goes
//! through a JSON string. Every frame is length-limited and checked before it is parsed: a
//! peer without the key, or sending garbage, gets its connection closed and nothing else; a
//! peer speaking another format version is told apart from garbage in the error.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Logs are 1 MB; a seed database may be larger. Anything beyond this is not ours.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
const TAG: usize = 32;
/// Where a frame's body (its version byte first) begins: after the length and the tag.
pub const BODY_START: usize = 4 + TAG;
/// The frame format this build speaks. Version 1 (no version byte, byte arrays as JSON
/// numbers) began its body with the JSON itself; version 2 was JSON alone, bytes in base64;
/// version 3 named the one hub `"Hub"` where version 4 numbers hubs (`{"Hub":1}`).
pub const FRAME_VERSION: u8 = 4;
/// The version byte and the JSON's length.
const HEAD: usize = 1 + 4;

/// A message that can travel in a frame; one with bulk bytes sends them after its JSON.
pub trait Framed: serde::Serialize + serde::de::DeserializeOwned + Sized {
    /// The message with its bulk bytes left out, and those bytes; `None` when it has none.
    fn without_bulk(&self) -> Option<(Self, &[u8])> {
        None
    }
    /// Where the message keeps its bulk bytes, if it has such a field.
    fn bulk_mut(&mut self) -> Option<&mut Vec<u8>> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLong(usize),
    #[error("frame of {0} bytes is too short to hold its authentication tag")]
    TooShort(usize),
    #[error("frame not authenticated: wrong cluster key or tampered with")]
    BadTag,
    #[error("frame is not a valid message: {0}")]
    Garbage(String),
    #[error("frame of format version {0}; this build speaks version {FRAME_VERSION} (run the same ccr build on every machine)")]
    Version(u8),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(secret: &str) -> Result<Key, String> {
        if secret.len() < 16 {
            return Err("the cluster key must be at least 16 characters".into());
        }
        Ok(Key(secret.as_bytes().to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

/// Encodes `value` as one authenticated frame.
pub fn encode<T: Framed>(key: &Key, value: &T) -> Vec<u8> {
    let light = value.without_bulk();
    let json = match &light {
        Some((light, _)) => serde_json::to_vec(light),
        None => serde_json::to_vec(value),
    }
    .expect("messages serialise");
    let bulk = light.as_ref().map_or(&[][..], |(_, bytes)| bytes);
    let mut head = [0u8; HEAD];
    head[0] = FRAME_VERSION;
    head[1..].copy_from_slice(&(json.len() as u32).to_be_bytes());
    // One buffer, tagged piece by piece: the bulk bytes are copied once, into the frame.
    let body_len = HEAD + json.len() + bulk.len();
    let mut mac = key.mac();
    for part in [&head[..], &json, bulk] {
        mac.update(part);
    }
    let mut out = Vec::with_capacity(4 + TAG + body_len);
    out.extend_from_slice(&((TAG + body_len) as u32).to_be_bytes());
    out.extend_from_slice(&mac.finalize().into_bytes());
    for part in [&head[..], &json, bulk] {
        out.extend_from_slice(part);
    }
    out
}

/// `body`, whatever it holds, as one frame signed with `key`.
pub fn seal(key: &Key, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + TAG + body.len());
    out.extend_from_slice(&((TAG + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&tag(key, body));
    out.extend_from_slice(body);
    out
}

/// The HMAC-SHA256 tag of `body` under `key`.
pub fn tag(key: &Key, body: &[u8]) -> [u8; TAG] {
    let mut mac = key.mac();
    mac.update(body);
    mac.finalize().into_bytes().into()
}

pub async fn write<W, T>(w: &mut W, key: &Key, value: &T) -> Result<(), FrameError>
where
    W: AsyncWriteExt + Unpin,
    T: Framed,
{
    w.write_all(&encode(key, value)).await?;
    // A TLS stream may hold what it encrypted until flushed; for TCP this costs nothing.
    w.flush().await?;
    Ok(())
}

/// Reads one frame, checks its length and tag, and parses it.
pub async fn read<R, T>(r: &mut R, key: &Key) -> Result<T, FrameError>
where
    R: AsyncReadExt + Unpin,
    T: Framed,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = check_len(len)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    open(key, &buf)
}

/// Decodes one whole frame held in memory (length, tag, body) — what [`read`] does with a
/// stream, for inputs that are not one (the fuzzer's).
pub fn decode<T: Framed>(key: &Key, frame: &[u8]) -> Result<T, FrameError> {
    let Some((len, rest)) = frame.split_first_chunk::<4>() else {
        return Err(FrameError::Closed);
    };
    let len = check_len(*len)?;
    if rest.len() != len {
        return Err(FrameError::Garbage(format!(
            "frame declares {len} bytes and holds {}",
            rest.len()
        )));
    }
    open(key, rest)
}

/// The declared length, refused before anything is allocated for it when it cannot be ours.
fn check_len(len: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    if len < TAG {
        return Err(FrameError::TooShort(len));
    }
    Ok(len)
}

/// Checks the tag over the body, then parses the body: nothing unauthenticated is parsed.
fn open<T: Framed>(key: &Key, tagged: &[u8]) -> Result<T, FrameError> {
    let (tag, body) = tagged.split_at(TAG);
    let mut mac = key.mac();
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| FrameError::BadTag)?;
    let rest = match body.split_first() {
        Some((&FRAME_VERSION, rest)) => rest,
        // Version 1 had no version byte: its body began with the JSON.
        Some((b'{' | b'"', _)) => return Err(FrameError::Version(1)),
        Some((&v, _)) => return Err(FrameError::Version(v)),
        None => return Err(FrameError::Garbage("empty body".into())),
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return Err(FrameError::Garbage("no room for the JSON's length".into()));
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > rest.len() {
        return Err(FrameError::Garbage(format!(
            "JSON of {len} bytes declared, {} left in the frame",
            rest.len()
        )));
    }
    let (json, bulk) = rest.split_at(len);
    let mut value: T =
        serde_json::from_slice(json).map_err(|e| FrameError::Garbage(e.to_string()))?;
    if !bulk.is_empty() {
        match value.bulk_mut() {
            Some(field) if field.is_empty() => field.extend_from_slice(bulk),
            Some(_) => {
                return Err(FrameError::Garbage(
                    "bulk bytes both inside the JSON and after it".into(),
                ))
            }
            None => {
                return Err(FrameError::Garbage(format!(
                    "{} bulk bytes after a message that carries none",
                    bulk.len()
                )))
            }
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;
    use ccr_core::cluster::wire::Msg;

    fn key() -> Key {
        Key::new("a test key of sixteen+").expect("key")
    }

    #[test]
    fn bulk_bytes_travel_as_they_are_and_come_back_whole() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        let wire = Wire::Cluster {
            from: ccr_core::cluster::Endpoint::Hub(ccr_core::cluster::HubId::FIRST),
            to: ccr_core::cluster::Endpoint::Node(ccr_core::cluster::NodeId::Node1),
            net: ccr_core::cluster::Net::Public,
            msg: Msg::Deliver {
                id: ccr_core::storage::MessageId(7),
                size: 100_000,
                body: bytes.clone(),
            },
        };
        let frame = encode(&key(), &wire);
        // As they are: no base64, no JSON number per byte.
        assert!(frame.len() < 100_000 + 300, "{} bytes", frame.len());
        match decode::<Wire>(&key(), &frame).expect("decodes") {
            Wire::Cluster {
                msg: Msg::Deliver { body, .. },
                ..
            } => assert_eq!(body, bytes),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_of_another_version_is_named_as_such() {
        let old = seal(&key(), br#"{"Acked":{"id":1}}"#);
        let e = decode::<Wire>(&key(), &old).expect_err("version 1");
        assert!(matches!(e, FrameError::Version(1)), "{e}");
        assert!(e.to_string().contains("speaks version 4"), "{e}");
        let v2 = seal(&key(), &[2, b'{', b'}']);
        assert!(matches!(
            decode::<Wire>(&key(), &v2),
            Err(FrameError::Version(2))
        ));
        let newer = seal(&key(), &[9, b'{', b'}']);
        assert!(matches!(
            decode::<Wire>(&key(), &newer),
            Err(FrameError::Version(9))
        ));
        let current = encode(&key(), &Wire::Acked { id: 1 });
        let e = decode::<Wire>(&key(), &seal(&key(), &[FRAME_VERSION, 0, 0, 0, 99, b'{']))
            .expect_err("short");
        assert!(e.to_string().contains("JSON of 99 bytes declared"), "{e}");
        // Bulk bytes after a message without a bulk field are refused, not dropped.
        let mut body = current[4 + TAG..].to_vec();
        body.extend_from_slice(b"extra");
        let e = decode::<Wire>(&key(), &seal(&key(), &body)).expect_err("extra");
        assert!(e.to_string().contains("5 bulk bytes"), "{e}");
        assert!(matches!(
            decode::<Wire>(&key(), &current),
            Ok(Wire::Acked { id: 1 })
        ));
    }
}
