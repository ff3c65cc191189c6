//! Rejected HTTP input kept in `dead-letters`.
//!
//! Why sealed: a rejected shipment creation may carry an email address or
//! phone number, and the log must reveal none. The value follows the
//! ingest dead-letter layout (docs/FORMAT.md) with source byte 2 (HTTP
//! API) and flag bit 0 set: the payload is sealed with the node key
//! ([`super::seal::ContactSealer::seal_bytes`], context `dead-letter`), so
//! an operator holding the key can still open and replay it.
//!
//! Layout (little-endian): version u8 = 1, source u8 = 2, problem code
//! u16, flags u32 (bit 0: payload sealed), received_at_ms u64,
//! input_bytes u64, name length u16, name (the route), payload.

use std::sync::Arc;

use dropline_log::{AppendRequest, Log, Record};

use super::app::App;
use super::problem::ProblemKind;

/// Topic of rejected input.
pub const DEAD_LETTERS_TOPIC: &str = "dead-letters";
/// Key of HTTP dead letters.
pub const HTTP_DEAD_LETTER_KEY: &[u8] = b"http";
/// Version byte of the value.
const FORMAT_V1: u8 = 1;
/// Source byte of the HTTP API.
pub const SOURCE_HTTP_API: u8 = 2;
/// Flag: the payload is sealed.
pub const FLAG_PAYLOAD_SEALED: u32 = 1;
/// Context bound into the seal of a dead-letter payload.
pub const DEAD_LETTER_SEAL_CONTEXT: &[u8] = b"dead-letter";

/// Which route rejected the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadLetterSource {
    CreateShipment,
    /// A refused admin request (its payload is the route).
    AdminApi,
}

impl DeadLetterSource {
    fn name(self) -> &'static str {
        match self {
            DeadLetterSource::CreateShipment => "POST /v1/shipments",
            DeadLetterSource::AdminApi => "admin API",
        }
    }
}

/// Numeric problem code for the value (never reused).
fn problem_code(kind: Option<ProblemKind>) -> u16 {
    match kind {
        Some(ProblemKind::MalformedBody) => 1,
        Some(ProblemKind::InvalidField) => 2,
        Some(ProblemKind::Conflict) => 3,
        Some(ProblemKind::Unauthorized) => 4,
        Some(ProblemKind::NotPermitted) => 5,
        _ => 0,
    }
}

/// A decoded HTTP dead letter (payload still sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpDeadLetter {
    /// Problem code (1 malformed body, 2 invalid field, 3 conflict, 4
    /// unauthorized, 5 not permitted).
    pub code: u16,
    /// Flags (bit 0: payload sealed).
    pub flags: u32,
    /// When the node received the request, ms since the epoch.
    pub received_at_ms: u64,
    /// Length of the body as received.
    pub input_bytes: u64,
    /// The route.
    pub route: String,
    /// The payload (sealed when `flags & 1`).
    pub payload: Vec<u8>,
}

impl HttpDeadLetter {
    /// Decodes a value written by this module; `None` if it is not one.
    pub fn decode(v: &[u8]) -> Option<HttpDeadLetter> {
        if v.len() < 26 || v[0] != FORMAT_V1 || v[1] != SOURCE_HTTP_API {
            return None;
        }
        let u64_at = |i: usize| {
            v.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let name_len = usize::from(u16::from_le_bytes([v[24], v[25]]));
        let route = std::str::from_utf8(v.get(26..26 + name_len)?)
            .ok()?
            .to_string();
        Some(HttpDeadLetter {
            code: u16::from_le_bytes([v[2], v[3]]),
            flags: u32::from_le_bytes([v[4], v[5], v[6], v[7]]),
            received_at_ms: u64_at(8)?,
            input_bytes: u64_at(16)?,
            route,
            payload: v.get(26 + name_len..)?.to_vec(),
        })
    }
}

/// The value of an HTTP dead letter (layout in the module docs).
fn encode(
    code: u16,
    flags: u32,
    received_at_ms: u64,
    input_bytes: u64,
    name: &str,
    payload: &[u8],
) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
    let mut v = Vec::with_capacity(26 + name.len() + payload.len());
    v.push(FORMAT_V1);
    v.push(SOURCE_HTTP_API);
    v.extend_from_slice(&code.to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&received_at_ms.to_le_bytes());
    v.extend_from_slice(&input_bytes.to_le_bytes());
    v.extend_from_slice(&(name.len() as u16).to_le_bytes());
    v.extend_from_slice(name);
    v.extend_from_slice(payload);
    v
}

/// Keeps an admin request refused for its bearer token on a node without
/// a contact sealer (a cluster node) and waits until it is durable: name
/// `admin API`, code 4 (unauthorized), and the route as the payload,
/// unsealed (flags 0): it holds no personal data, and the presented token
/// is never kept. `false` if it could not be kept.
pub async fn keep_admin_refusal(log: &Arc<Log>, route: &str) -> bool {
    let v = encode(
        problem_code(Some(ProblemKind::Unauthorized)),
        0,
        log.config().clock.now_ms(),
        0,
        DeadLetterSource::AdminApi.name(),
        route.as_bytes(),
    );
    append(log.clone(), v).await
}

/// Appends the value `v` of an HTTP dead letter to `log`'s
/// `dead-letters` and waits until it is durable; `false` on failure.
async fn append(log: Arc<Log>, v: Vec<u8>) -> bool {
    let res = tokio::task::spawn_blocking(move || {
        let part = log.partition(DEAD_LETTERS_TOPIC, 0)?;
        // The rejection is answered once the letter is durable: a client
        // that saw its 4xx can rely on the input being kept, and a flood
        // of bad requests is slowed to the group-commit pace.
        part.append(&AppendRequest {
            records: &[Record {
                key: HTTP_DEAD_LETTER_KEY,
                value: &v,
            }],
            producer: None,
        })
        .map(|_| ())
    })
    .await;
    matches!(res, Ok(Ok(())))
}

/// Appends a dead letter for a rejected body and waits until it is
/// durable. A failure is counted and logged, never turned into a second
/// error for the client.
pub(crate) async fn keep(
    app: &Arc<App>,
    source: DeadLetterSource,
    kind: Option<ProblemKind>,
    body: &[u8],
) {
    app.metrics.dead_letter();
    let Ok(payload) = app.state.sealer.seal_bytes(DEAD_LETTER_SEAL_CONTEXT, body) else {
        app.metrics.dead_letter_failed();
        return;
    };
    let v = encode(
        problem_code(kind),
        FLAG_PAYLOAD_SEALED,
        app.now_ms(),
        body.len() as u64,
        source.name(),
        &payload,
    );
    if !append(app.state.log.clone(), v).await {
        app.metrics.dead_letter_failed();
        tracing::warn!("could not keep an HTTP dead letter");
    }
}
