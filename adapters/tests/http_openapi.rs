//! The OpenAPI document in step with the server: every registered route is
//! documented and every documented operation is registered, and real
//! responses validate against the documented schemas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::collections::BTreeSet;

use dropline_adapters::http::{DEAD_LETTER_SEAL_CONTEXT, openapi, route_table};
use dropline_operators::model::{Status, SubStatus};
use http_support::*;
use serde_json::Value;

fn doc() -> Value {
    serde_json::from_str(openapi::DOCUMENT).unwrap()
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc = doc();
    let served: BTreeSet<(String, String)> = route_table()
        .iter()
        .map(|r| (r.method.to_lowercase(), r.path.to_string()))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(served, documented, "routes and OpenAPI paths differ");
    // Admin routes declare the admin bearer scheme, shipment creation the
    // marketplace key (optional: open when no keys are configured); the
    // other public routes declare none.
    for r in route_table() {
        let op = &doc["paths"][r.path][r.method.to_lowercase()];
        let schemes: BTreeSet<String> = op
            .get("security")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter_map(|req| req.as_object())
            .flat_map(|req| req.keys().cloned())
            .collect();
        let expected: BTreeSet<String> = if r.admin {
            ["admin".to_string()].into()
        } else if (r.method, r.path) == ("POST", "/v1/shipments") {
            ["marketplace".to_string()].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(schemes, expected, "{} {}", r.method, r.path);
        for scheme in &schemes {
            assert!(
                doc["components"]["securitySchemes"].get(scheme).is_some(),
                "{scheme} is not defined"
            );
        }
    }
}

/// Validates `v` against a schema: the subset the document uses (type,
/// enum, required, properties, additionalProperties false, items, anyOf,
/// $ref). Returns the first mismatch.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        let s = &doc["components"]["schemas"][name];
        assert!(!s.is_null(), "dangling $ref {r}");
        return validate(doc, s, v, at);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        return if any.iter().any(|s| validate(doc, s, v, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: matches no anyOf branch: {v}"))
        };
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not of type {types:?}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} not in enum {e:?}"));
    }
    if let Some(obj) = v.as_object() {
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for k in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(k) {
                    return Err(format!("{at}: missing required {k}"));
                }
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, val, &format!("{at}.{k}"))?,
                None if props.is_some() => return Err(format!("{at}: undocumented property {k}")),
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn response_schema(
    doc: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
) -> Value {
    let s = &doc["paths"][path][method]["responses"][status.to_string()]["content"][content_type]["schema"];
    assert!(
        !s.is_null(),
        "{method} {path} {status} {content_type} is not documented"
    );
    s.clone()
}

async fn check(
    node: &Node,
    doc: &Value,
    method: &str,
    path: &str,
    resp: reqwest::Response,
) -> Value {
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    let schema = response_schema(doc, method, path, status, &ct);
    validate(doc, &schema, &body, "$")
        .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}\n{body:#}"));
    let _ = node;
    body
}

#[tokio::test]
async fn real_responses_validate_against_the_document() {
    let doc = doc();
    // The request schema accepts the example body.
    let example = order_json("1Z999AA10123456784", "ORD-1");
    validate(
        &doc,
        &doc["components"]["schemas"]["CreateShipment"],
        &example,
        "$",
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (node, _admin) = start_admin(dir.path()).await;
    let c = &node.client;
    let tn = "1Z999AA10123456784";
    let r = c
        .post(format!("{}/v1/shipments", node.base))
        .json(&example)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created = check(&node, &doc, "post", "/v1/shipments", r).await;
    let r = c
        .post(format!("{}/v1/shipments", node.base))
        .json(&example)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    check(&node, &doc, "post", "/v1/shipments", r).await;
    let r = c
        .post(format!("{}/v1/shipments", node.base))
        .json(&serde_json::json!({"x": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    check(&node, &doc, "post", "/v1/shipments", r).await;

    let mut v = view(
        tn,
        Status::Exception,
        SubStatus::AddressIssue,
        7,
        1_732_100_000_000,
        "Memphis",
    );
    v.open_exception = Some(dropline_operators::ops::OpenException {
        class: dropline_operators::ops::ExceptionClass::AddressIssue,
        remediation: dropline_operators::ops::Remediation::AddressVerificationLink,
        since_log_ms: 1_732_100_060_000,
        escalated: false,
    });
    append_view(&node.log, &v);
    wait_status(&node, tn, Status::Exception).await;
    let path = "/v1/shipments/{carrier}/{tracking_number}";
    let r = c
        .get(format!("{}/v1/shipments/ups/{tn}", node.base))
        .send()
        .await
        .unwrap();
    let public = check(&node, &doc, "get", path, r).await;
    assert_eq!(public["access"], "public");
    let token = created["order_token"].as_str().unwrap();
    let r = c
        .get(format!("{}/v1/shipments/ups/{tn}?token={token}", node.base))
        .send()
        .await
        .unwrap();
    let full = check(&node, &doc, "get", path, r).await;
    assert_eq!(
        full["exception"]["action"]["kind"],
        "address_verification_link"
    );
    let r = c
        .get(format!("{}/v1/shipments/ups/NOPE0000", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    check(&node, &doc, "get", path, r).await;

    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = c
        .get(format!("{}/v1/admin/status", node.base))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let status = check(&node, &doc, "get", "/v1/admin/status", r).await;
    assert_eq!(status["ready"], true);
    let r = c
        .get(format!("{}/v1/admin/status", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    check(&node, &doc, "get", "/v1/admin/status", r).await;
    // The refusal is kept in dead-letters with its route (and never the
    // presented token), sealed like every HTTP dead letter.
    let letters: Vec<_> = http_dead_letters(&node.log)
        .into_iter()
        .filter(|l| l.route == "admin API")
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].code, 4, "unauthorized");
    let opened = node
        .sealer
        .open_bytes(DEAD_LETTER_SEAL_CONTEXT, &letters[0].payload)
        .unwrap();
    assert_eq!(opened, b"GET /v1/admin/status");
    let r = c
        .get(format!("{}/v1/admin/topics", node.base))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let topics = check(&node, &doc, "get", "/v1/admin/topics", r).await;
    assert!(
        topics
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "orders" && t["records"] == 1)
    );
    let r = c
        .get(format!("{}/v1/admin/stats", node.base))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    check(&node, &doc, "get", "/v1/admin/stats", r).await;
    let r = c
        .post(format!("{}/v1/admin/drop-mode", node.base))
        .header("authorization", &auth)
        .json(&serde_json::json!({"on": true}))
        .send()
        .await
        .unwrap();
    let dm = check(&node, &doc, "post", "/v1/admin/drop-mode", r).await;
    assert_eq!(dm["on"], true);
    let r = c
        .get(format!("{}/v1/forensics/{tn}", node.base))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let h = check(&node, &doc, "get", "/v1/forensics/{tracking_number}", r).await;
    assert_eq!(h["orders"].as_array().unwrap().len(), 1);

    let spec: Value = c
        .get(format!("{}/openapi.json", node.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec, doc);
}
