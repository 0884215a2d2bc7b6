//! Frames on the wire: a 4-byte big-endian length, a 32-byte HMAC-SHA256 tag over the body
//! keyed with the cluster key, and the body (JSON). Every frame is length-limited and checked
//! before it is parsed: a peer without the key, or sending garbage, gets its connection closed
//! and nothing else.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Logs are 1 MB; a seed database may be larger. Anything beyond this is not ours.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
const TAG: usize = 32;

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
pub fn encode<T: serde::Serialize>(key: &Key, value: &T) -> Vec<u8> {
    seal(key, &serde_json::to_vec(value).expect("messages serialise"))
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
    T: serde::Serialize,
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
    T: serde::de::DeserializeOwned,
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
pub fn decode<T: serde::de::DeserializeOwned>(key: &Key, frame: &[u8]) -> Result<T, FrameError> {
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
fn open<T: serde::de::DeserializeOwned>(key: &Key, tagged: &[u8]) -> Result<T, FrameError> {
    let (tag, body) = tagged.split_at(TAG);
    let mut mac = key.mac();
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| FrameError::BadTag)?;
    serde_json::from_slice(body).map_err(|e| FrameError::Garbage(e.to_string()))
}
