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
    let body = serde_json::to_vec(value).expect("messages serialise");
    let mut mac = key.mac();
    mac.update(&body);
    let tag = mac.finalize().into_bytes();
    let mut out = Vec::with_capacity(4 + TAG + body.len());
    out.extend_from_slice(&((TAG + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(&tag);
    out.extend_from_slice(&body);
    out
}

pub async fn write<W, T>(w: &mut W, key: &Key, value: &T) -> Result<(), FrameError>
where
    W: AsyncWriteExt + Unpin,
    T: serde::Serialize,
{
    w.write_all(&encode(key, value)).await?;
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
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    if len < TAG {
        return Err(FrameError::TooShort(len));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    let (tag, body) = buf.split_at(TAG);
    let mut mac = key.mac();
    mac.update(body);
    mac.verify_slice(tag).map_err(|_| FrameError::BadTag)?;
    serde_json::from_slice(body).map_err(|e| FrameError::Garbage(e.to_string()))
}
