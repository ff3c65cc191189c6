//! A small pool of SMTP connections whose sends are bounded in time.
//!
//! Why not lettre's own pool: under tokio, lettre's timeout bounds only the
//! TCP connect. A server that stops answering, or a pooled connection whose
//! peer vanished without a FIN (a crashed relay host, a NAT entry dropped),
//! leaves a command waiting for a reply that never comes, and the send with
//! it: its slot in the worker is never given back. A send here runs under
//! one deadline from checkout to the server's final reply; when the deadline
//! passes, the future is dropped and the connection with it, so a
//! connection in an unknown state (mid-transaction, its reply still on the
//! way) is never handed to the next message. Only connections that just
//! completed a transaction go back to the pool.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;

/// A pooled connection idle longer than this is checked with `NOOP` before
/// it carries a message, ms.
pub const IDLE_CHECK_AFTER_MS: u64 = 5_000;
/// A pooled connection idle longer than this is closed instead of reused
/// (servers commonly drop idle clients after a minute or so), ms.
pub const IDLE_CLOSE_AFTER_MS: u64 = 60_000;

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// Why a pooled send failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSendError {
    /// The server or the connection failed (lettre's error says which and
    /// whether the failure is permanent).
    #[error("SMTP: {0}")]
    Smtp(#[from] SmtpError),
    /// The server did not finish within the deadline.
    #[error("SMTP: no complete answer within {timeout_ms} ms")]
    Timeout {
        /// The deadline, ms.
        timeout_ms: u64,
    },
}

impl SmtpSendError {
    /// Whether retrying cannot help (a 5xx reply).
    pub fn is_permanent(&self) -> bool {
        match self {
            SmtpSendError::Smtp(e) => e.is_permanent(),
            SmtpSendError::Timeout { .. } => false,
        }
    }
}

/// Connections to one SMTP server (plain SMTP, no TLS or AUTH: a relay on
/// the same host or network).
pub struct SmtpPool {
    host: String,
    port: u16,
    hello: ClientId,
    idle: Mutex<Vec<Idle>>,
    idle_max: usize,
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpPool")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("idle_max", &self.idle_max)
            .finish_non_exhaustive()
    }
}

impl SmtpPool {
    /// A pool keeping at most `idle_max` idle connections to `host:port`.
    pub fn new(host: &str, port: u16, idle_max: usize) -> SmtpPool {
        SmtpPool {
            host: host.to_string(),
            port,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            idle_max: idle_max.max(1),
        }
    }

    /// Connections idle in the pool now.
    pub fn idle_connections(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let close_after = Duration::from_millis(IDLE_CLOSE_AFTER_MS);
        // Dropping a connection closes its socket without a QUIT, which
        // could wait on a peer that no longer answers.
        idle.retain(|c| c.since.elapsed() < close_after);
        idle.pop()
    }

    fn give_back(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.idle_max && !conn.has_broken() {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn checkout(&self, timeout: Duration) -> Result<AsyncSmtpConnection, SmtpError> {
        let check_after = Duration::from_millis(IDLE_CHECK_AFTER_MS);
        while let Some(Idle { mut conn, since }) = self.take_idle() {
            if since.elapsed() < check_after || conn.test_connected().await {
                return Ok(conn);
            }
        }
        AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(timeout),
            &self.hello,
            None,
            None,
        )
        .await
    }

    /// Sends `email` (the formatted message) to `envelope`'s recipients,
    /// everything (checkout, connect, the transaction) within `timeout`.
    pub async fn send(
        &self,
        envelope: &Envelope,
        email: &[u8],
        timeout: Duration,
    ) -> Result<(), SmtpSendError> {
        let attempt = async {
            let mut conn = self.checkout(timeout).await?;
            conn.send(envelope, email).await?;
            Ok::<_, SmtpError>(conn)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(conn)) => {
                self.give_back(conn);
                Ok(())
            }
            // A failed transaction's connection is dropped with the future.
            Ok(Err(e)) => Err(SmtpSendError::Smtp(e)),
            Err(_) => Err(SmtpSendError::Timeout {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}
