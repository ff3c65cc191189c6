//! Typed error responses: RFC 9457 problem details
//! (`application/problem+json`).
//!
//! Why typed: a storefront integrating at checkout must be able to tell a
//! field it got wrong (fix and resend) from a node that is busy (retry
//! later) from a conflict (the order already exists with other data)
//! without parsing English.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What went wrong, as a stable machine-readable kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The body is not JSON of the expected shape.
    MalformedBody,
    /// A field is missing, too long, or not a valid value.
    InvalidField,
    /// The same (marketplace, order id, tracking number) exists with
    /// different data.
    Conflict,
    /// The shipment is not known.
    NotFound,
    /// Too many requests from this client.
    RateLimited,
    /// The bearer token is missing or wrong.
    Unauthorized,
    /// The admin API is not configured on this node.
    Forbidden,
    /// The key is valid but may not do this (another marketplace's orders).
    NotPermitted,
    /// The node cannot take this now (log not ready, too many in flight).
    Unavailable,
    /// The node failed (log write, key).
    Internal,
}

impl ProblemKind {
    fn status(self) -> StatusCode {
        match self {
            ProblemKind::MalformedBody | ProblemKind::InvalidField => StatusCode::BAD_REQUEST,
            ProblemKind::Conflict => StatusCode::CONFLICT,
            ProblemKind::NotFound => StatusCode::NOT_FOUND,
            ProblemKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ProblemKind::Forbidden | ProblemKind::NotPermitted => StatusCode::FORBIDDEN,
            ProblemKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            ProblemKind::MalformedBody => "The request body is not valid JSON for this endpoint",
            ProblemKind::InvalidField => "A field is invalid",
            ProblemKind::Conflict => "The order exists with different data",
            ProblemKind::NotFound => "No such shipment",
            ProblemKind::RateLimited => "Too many requests",
            ProblemKind::Unauthorized => "Missing or wrong bearer token",
            ProblemKind::Forbidden => "The admin API is not enabled on this node",
            ProblemKind::NotPermitted => "This key may not do that",
            ProblemKind::Unavailable => "The node cannot take this request now",
            ProblemKind::Internal => "The node failed to handle the request",
        }
    }

    /// The stable code used in the problem's `type` (`/problems/<code>`).
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::MalformedBody => "malformed-body",
            ProblemKind::InvalidField => "invalid-field",
            ProblemKind::Conflict => "conflict",
            ProblemKind::NotFound => "not-found",
            ProblemKind::RateLimited => "rate-limited",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::NotPermitted => "not-permitted",
            ProblemKind::Unavailable => "unavailable",
            ProblemKind::Internal => "internal",
        }
    }
}

/// A problem response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the kind.
    pub title: &'static str,
    /// HTTP status code.
    pub status: u16,
    /// What exactly was wrong.
    pub detail: String,
    /// The offending field (JSON name), for `invalid-field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// Seconds to wait before retrying (`rate-limited`, `unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u32>,
    #[serde(skip)]
    kind: Option<ProblemKind>,
}

impl Problem {
    /// A problem of `kind` with a detail message.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("/problems/{}", kind.code()),
            title: kind.title(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            field: None,
            retry_after_s: None,
            kind: Some(kind),
        }
    }

    /// An `invalid-field` problem about `field`.
    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(ProblemKind::InvalidField, detail);
        p.field = Some(field);
        p
    }

    /// Adds a retry hint.
    pub fn retry_after(mut self, seconds: u32) -> Problem {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The kind.
    pub fn kind(&self) -> Option<ProblemKind> {
        self.kind
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(s) = self.retry_after_s {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
