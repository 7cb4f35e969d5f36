//! `POST /v1/receipts/{vendor}/{certificate}`: delivery receipts posted by the push vendors.
//! No bearer token (vendors cannot send one): each vendor's own proof is checked by its push
//! service. Bounded by `receipts.max_body_bytes` (413) and a per-certificate rate (429); a
//! refused request changes nothing.

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::domain::now_millis;
use crate::domain::receipt::ReceiptError;
use crate::gateway::ReceiptRefusal;
use crate::providers::ReceiptRequest;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

/// Headers a vendor's proof may be in are small; more or longer ones are not read.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 4096;

pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (vendor, id) = path.into_inner();
    let limit = state.gateway.config.receipts.max_body_bytes;
    let too_large = || {
        state
            .gateway
            .metrics()
            .receipts_refused
            .with_label_values(&["unknown", "too_large"])
            .inc();
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "receipt_too_large",
            format!("a receipt request may carry at most {limit} bytes (receipts.max_body_bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_body", format!("the body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .take(MAX_HEADERS)
        .filter_map(|(k, v)| {
            let v = v.to_str().ok().filter(|v| v.len() <= MAX_HEADER_BYTES)?;
            Some((k.as_str().to_ascii_lowercase(), v.to_owned()))
        })
        .collect();
    let request = ReceiptRequest {
        body: &body,
        headers: &headers,
        now_ms: now_millis(),
    };
    match state.gateway.receive_receipts(&vendor, &id, &request).await {
        Ok(summary) => Ok(HttpResponse::Ok().json(summary)),
        Err(ReceiptRefusal::RateLimited { retry_after, .. }) => {
            let e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "receipts_rate_limited",
                format!(
                    "certificate {id} posts receipts faster than receipts.requests_per_sec; \
                     retry after {retry_after} s"
                ),
            );
            Ok(HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", retry_after.to_string()))
                .json(ErrorBody { error: e.detail }))
        }
        Err(e) => Err(refusal(e)),
    }
}

fn refusal(e: ReceiptRefusal) -> ApiError {
    let message = e.to_string();
    match e {
        ReceiptRefusal::UnknownCertificate { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_certificate", message)
        }
        ReceiptRefusal::Refused(ReceiptError::Malformed { field, .. }) => {
            ApiError::bad_request("invalid_receipt", message).with_field(field)
        }
        ReceiptRefusal::Refused(ReceiptError::Unverified(_)) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "receipt_unverified", message)
        }
        ReceiptRefusal::Refused(ReceiptError::Unsupported(_)) => {
            ApiError::new(StatusCode::NOT_FOUND, "receipts_unsupported", message)
        }
        ReceiptRefusal::RateLimited { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "receipts_rate_limited",
            message,
        ),
        ReceiptRefusal::Store(g) => ApiError::from(g),
    }
}
