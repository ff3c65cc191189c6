//! Email over SMTP (lettre builds the message and speaks the protocol; the
//! connections are [`SmtpPool`]'s, whose sends are bounded in time). The
//! idempotency key is the `Message-ID` (and `X-Dropline-Idempotency-Key`),
//! so a receiving system can drop a repeat; every message has an
//! unsubscribe link and the one-click `List-Unsubscribe` headers (RFC 8058).

use std::time::Duration;

use lettre::Message as Email;
use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::super::notification::Message;
use super::super::scheduler::SendOutcome;
use super::render::render;
use super::smtp_pool::SmtpPool;

/// Header with the idempotency key on emails.
pub const EMAIL_IDEMPOTENCY_HEADER: &str = "X-Dropline-Idempotency-Key";
/// Domain part of generated `Message-ID`s.
pub const MESSAGE_ID_DOMAIN: &str = "dropline.invalid";

/// SMTP settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailConfig {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// `From` address.
    pub from: String,
    /// Base URL of the node's HTTP endpoint for unsubscribe links
    /// (`<base>/delivery/unsubscribe?token=...`).
    pub unsubscribe_base_url: String,
    /// Idle connections kept open to the server.
    pub pool_connections_max: u32,
    /// Bound on one whole send (connect, every command, the server's final
    /// reply), ms; past it the send is retried on a new connection.
    pub timeout_ms: u64,
}

/// Sends email.
pub struct EmailSender {
    config: EmailConfig,
    pool: SmtpPool,
    from: Option<Mailbox>,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EmailSender {
    /// A sender with `config` (plain SMTP, no TLS: loopback relays).
    pub fn new(config: EmailConfig) -> EmailSender {
        let pool = SmtpPool::new(
            &config.host,
            config.port,
            usize::try_from(config.pool_connections_max).unwrap_or(usize::MAX),
        );
        EmailSender {
            from: config.from.parse().ok(),
            config,
            pool,
        }
    }

    /// The unsubscribe URL for a contact's token.
    pub fn unsubscribe_url(&self, token: &str) -> String {
        format!(
            "{}/delivery/unsubscribe?token={token}",
            self.config.unsubscribe_base_url.trim_end_matches('/')
        )
    }

    /// Sends `m`; `unsubscribe_token` identifies the contact.
    pub async fn send(&self, m: &Message, unsubscribe_token: &str) -> SendOutcome {
        let Some(from) = self.from.clone() else {
            return SendOutcome::Permanent {
                error: format!("bad From address {:?}", self.config.from),
            };
        };
        let to: Mailbox = match m.address().parse() {
            Ok(t) => t,
            Err(e) => {
                return SendOutcome::Permanent {
                    error: format!("bad recipient address: {e}"),
                };
            }
        };
        let r = render(m);
        let link = self.unsubscribe_url(unsubscribe_token);
        let key = m.idempotency_key();
        let email = Email::builder()
            .from(from)
            .to(to)
            .subject(r.title)
            .message_id(Some(format!("<{key}@{MESSAGE_ID_DOMAIN}>")))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(EMAIL_IDEMPOTENCY_HEADER),
                key.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{link}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ))
            .header(ContentType::TEXT_PLAIN)
            .body(format!("{}\n\nUnsubscribe: {link}\n", r.body));
        let email = match email {
            Ok(e) => e,
            Err(e) => {
                return SendOutcome::Permanent {
                    error: format!("building the email: {e}"),
                };
            }
        };
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1));
        match self
            .pool
            .send(email.envelope(), &email.formatted(), timeout)
            .await
        {
            Ok(()) => SendOutcome::Accepted,
            Err(e) if e.is_permanent() => SendOutcome::Permanent {
                error: e.to_string(),
            },
            Err(e) => SendOutcome::Retryable {
                error: e.to_string(),
                retry_after_ms: None,
            },
        }
    }
}
