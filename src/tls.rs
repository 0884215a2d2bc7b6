//! TLS on the links between the real binary's processes: rustls, TLS 1.3, both ends show a
//! certificate and both check it against the cluster's CA. Frames inside stay authenticated
//! under the cluster key, so TLS adds privacy and a second, independent check of who is
//! talking; a peer whose certificate another CA signed is refused at the handshake, with the
//! reason logged on the side that refused.
//!
//! A client checks the server's certificate against the IP address it dialled (the SAN an
//! operator puts in each machine's certificate); `ccr up` makes a throwaway CA for loopback.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The `[tls]` section of a node's or hub's config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster's CA certificate (PEM): only peers whose certificate it signed are let in.
    pub ca: PathBuf,
    /// This machine's certificate (PEM), signed by `ca`, naming the IP addresses it listens on.
    pub cert: PathBuf,
    /// The certificate's private key (PEM).
    pub key: PathBuf,
}

/// A connection to or from a peer, plain or encrypted.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
pub type Conn = Box<dyn Stream>;

/// Why a connection could not be opened: the peer is not there, or it is there and the TLS
/// handshake failed (a misconfiguration worth saying, not an outage).
#[derive(Debug)]
pub enum ConnectError {
    Unreachable(String),
    Handshake(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Unreachable(e) | ConnectError::Handshake(e) => f.write_str(e),
        }
    }
}

impl From<ConnectError> for String {
    fn from(e: ConnectError) -> String {
        e.to_string()
    }
}

/// How long a peer has to finish the TLS handshake before its connection is dropped.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// How this process makes and takes connections: plain TCP, or TLS with its certificate.
#[derive(Clone, Default)]
pub struct Links(Option<Arc<Tls>>);

struct Tls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
}

impl Links {
    /// Plain TCP (no `[tls]` section).
    pub fn plain() -> Links {
        Links(None)
    }

    /// TLS with the files a `[tls]` section names, or plain TCP without one. Errors name the
    /// file and what is wrong with it.
    pub fn load(files: Option<&TlsFiles>) -> Result<Links, String> {
        let Some(files) = files else {
            return Ok(Links::plain());
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&files.ca)? {
            roots
                .add(ca)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", files.ca.display()))?;
        }
        let roots = Arc::new(roots);
        let chain = certificates(&files.cert)?;
        let bytes = read(&files.key)?;
        let key = PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|e| format!("{}: no private key in it: {e}", files.key.display()))?;
        let mismatch = |side: &str, e: rustls::Error| {
            format!(
                "{} with {}: cannot serve as the {side}'s certificate: {e}",
                files.cert.display(),
                files.key.display()
            )
        };
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("{}: {e}", files.ca.display()))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| mismatch("server", e))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| mismatch("client", e))?;
        Ok(Links(Some(Arc::new(Tls {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        }))))
    }

    pub fn is_tls(&self) -> bool {
        self.0.is_some()
    }

    /// Connects to `addr` and, with TLS, completes the handshake (checking the server's
    /// certificate against the address dialled).
    pub async fn connect(&self, addr: SocketAddr) -> Result<Conn, ConnectError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ConnectError::Unreachable(format!("cannot reach {addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.0 else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::IpAddress(addr.ip().into());
        match tokio::time::timeout(HANDSHAKE, tls.connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(ConnectError::Handshake(format!(
                "{addr}: TLS handshake failed: {e}"
            ))),
            Err(_) => Err(ConnectError::Handshake(format!(
                "{addr}: no TLS handshake within {HANDSHAKE:?}"
            ))),
        }
    }

    /// Takes an accepted connection and, with TLS, completes the handshake (checking the
    /// client's certificate against the CA). The error says why a peer was refused.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Conn, String> {
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.0 else {
            return Ok(Box::new(tcp));
        };
        match tokio::time::timeout(HANDSHAKE, tls.acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(format!("TLS handshake refused: {e}")),
            Err(_) => Err(format!("no TLS handshake within {HANDSHAKE:?}")),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    Ok(certs)
}

/// Makes a throwaway CA in `dir` (`ca.pem`) and, for each machine, a certificate for its IP
/// addresses signed by it (`NAME.pem`, `NAME.key`). The CA's own key is never written: nobody
/// can sign another certificate for this cluster afterwards.
pub fn throwaway_ca(dir: &Path, machines: &[(&str, Vec<IpAddr>)]) -> Result<Vec<TlsFiles>, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let fail = |e: rcgen::Error| format!("cannot make the throwaway CA: {e}");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };

    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // A name of its own: two throwaway CAs must not look like one (a stranger's certificate
    // is then refused as of an unknown issuer, not as a forged signature).
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("ccr throwaway cluster CA {:016x}", rand::random::<u64>()),
    );
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(fail)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let ca_path = write("ca.pem", &ca_cert.pem())?;
    let issuer = Issuer::new(ca, ca_key);

    let mut files = Vec::new();
    for (name, ips) in machines {
        let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        leaf.distinguished_name.push(DnType::CommonName, *name);
        leaf.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every process both dials and answers.
        leaf.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        leaf.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(fail)?;
        let cert = leaf.signed_by(&key, &issuer).map_err(fail)?;
        let cert_path = write(&format!("{name}.pem"), &cert.pem())?;
        let key_path = write(&format!("{name}.key"), &key.serialize_pem())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("{}: {e}", key_path.display()))?;
        }
        files.push(TlsFiles {
            ca: ca_path.clone(),
            cert: cert_path,
            key: key_path,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ca(dir: &Path) -> Vec<TlsFiles> {
        let lo = vec![IpAddr::from([127, 0, 0, 1])];
        throwaway_ca(dir, &[("a", lo.clone()), ("b", lo)]).expect("a CA")
    }

    /// One connection from `client` to a listener using `server`: what each side ended with.
    async fn handshake(server: Links, client: Links) -> (Result<(), String>, Result<(), String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = server.accept(tcp).await?;
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            conn.write_all(&buf).await.map_err(|e| e.to_string())?;
            conn.flush().await.map_err(|e| e.to_string())
        });
        let dial = async {
            let mut conn = client.connect(addr).await?;
            conn.write_all(b"hello").await.map_err(|e| e.to_string())?;
            conn.flush().await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            if &buf != b"hello" {
                return Err(format!("echoed {buf:?}"));
            }
            Ok(())
        };
        let dialled = dial.await;
        (serve.await.unwrap(), dialled)
    }

    #[tokio::test]
    async fn machines_of_one_ca_talk_and_a_certificate_of_another_ca_is_refused() {
        let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ours, theirs) = (ca(ours.path()), ca(theirs.path()));
        let load = |f: &TlsFiles| Links::load(Some(f)).expect("loads");

        let (served, dialled) = handshake(load(&ours[0]), load(&ours[1])).await;
        assert_eq!((served, dialled), (Ok(()), Ok(())));

        // A client showing a certificate of another CA, though it trusts ours: the server
        // refuses it and says why.
        let stranger = TlsFiles {
            ca: ours[0].ca.clone(),
            ..theirs[1].clone()
        };
        let (served, dialled) = handshake(load(&ours[0]), load(&stranger)).await;
        let refused = served.expect_err("the server let a stranger in");
        assert!(refused.contains("TLS handshake refused"), "{refused}");
        assert!(refused.contains("UnknownIssuer"), "{refused}");
        assert!(dialled.is_err());

        // A server of another CA: the client refuses it.
        let (_, dialled) = handshake(load(&theirs[0]), load(&ours[1])).await;
        let refused = dialled.expect_err("the client trusted a stranger");
        assert!(refused.contains("UnknownIssuer"), "{refused}");

        // A plain client gets nothing from a TLS server.
        let (served, dialled) = handshake(load(&ours[0]), Links::plain()).await;
        assert!(served.is_err() && dialled.is_err());
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = ca(dir.path());
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let cases = [
            (
                TlsFiles {
                    ca: dir.path().join("missing.pem"),
                    ..files[0].clone()
                },
                "missing.pem: cannot read",
            ),
            (
                TlsFiles {
                    ca: garbage.clone(),
                    ..files[0].clone()
                },
                "garbage.pem: holds no certificate",
            ),
            (
                TlsFiles {
                    key: garbage.clone(),
                    ..files[0].clone()
                },
                "garbage.pem: no private key",
            ),
            (
                TlsFiles {
                    key: files[1].key.clone(),
                    ..files[0].clone()
                },
                "a.pem with",
            ),
        ];
        for (bad, expected) in cases {
            let e = Links::load(Some(&bad)).err().expect("bad files load");
            assert!(e.contains(expected), "{e:?} lacks {expected:?}");
        }
    }
}
