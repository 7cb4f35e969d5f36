//! Certificates: the admin API behind the console (seed 步骤2).

use super::auth::AdminAuth;
use super::codec::{reply, Body};
use super::error::ApiError;
use super::AppState;
use crate::certs::{CertEntry, CertStatus};
use crate::domain::credentials::CredentialsView;
use crate::domain::validate::CertificateInput;
use crate::domain::{now_secs, ClickAction};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use std::collections::BTreeMap;

/// A certificate as the API shows it: never the secret, only whether one is set.
#[derive(Debug, Serialize)]
pub struct CertificateView {
    pub id: u64,
    pub package_name: String,
    pub click_action: ClickAction,
    pub qps: u32,
    /// `vendor` and the vendor's fields, secrets only as `…_set` flags.
    #[serde(flatten)]
    pub credentials: CredentialsView,
    pub status: CertStatus,
    pub stats: StatsView,
}

#[derive(Debug, Serialize)]
pub struct StatsView {
    pub sent: u64,
    pub queued: u64,
    pub rate_limited: u64,
    pub failed: BTreeMap<&'static str, u64>,
    /// Notifications the vendor's delivery receipts say reached the phone.
    pub delivered_to_phone: u64,
    /// Notifications the vendor's receipts say the user tapped.
    pub clicked: u64,
}

pub fn view(state: &AppState, e: &CertEntry) -> CertificateView {
    let c = e.cert();
    // Cluster mode: every node's figures together (`Gateway::refresh_certificate_figures`).
    let figures = e.stats.shown();
    let failed = figures.failures().map(|(c, n)| (c.as_str(), n)).collect();
    CertificateView {
        id: c.id,
        package_name: c.package_name.clone(),
        click_action: c.click_action.clone(),
        qps: c.qps,
        credentials: c.credentials.view(),
        status: e.status(now_secs()),
        stats: StatsView {
            sent: figures.sent,
            queued: state.gateway.queued(c.id) as u64,
            rate_limited: figures.rate_limited,
            failed,
            delivered_to_phone: figures.receipts_delivered,
            clicked: figures.receipts_clicked,
        },
    }
}

#[derive(Serialize)]
struct CertificateList {
    certificates: Vec<CertificateView>,
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("'{raw}' is not a certificate id (a number)"),
        )
    })
}

pub async fn create(
    _auth: AdminAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body<CertificateInput>,
) -> Result<HttpResponse, ApiError> {
    let e = state.gateway.create_certificate(body.0).await?;
    Ok(reply(&req, StatusCode::CREATED, &view(&state, &e)))
}

pub async fn list(
    _auth: AdminAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let entries = state.gateway.certificates();
    state.gateway.refresh_certificate_figures(&entries).await;
    let certificates = entries.iter().map(|e| view(&state, e)).collect();
    Ok(reply(
        &req,
        StatusCode::OK,
        &CertificateList { certificates },
    ))
}

pub async fn get(
    _auth: AdminAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = state.gateway.certificate(parse_id(&id)?)?;
    state
        .gateway
        .refresh_certificate_figures(std::slice::from_ref(&e))
        .await;
    Ok(reply(&req, StatusCode::OK, &view(&state, &e)))
}

pub async fn update(
    _auth: AdminAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Body<CertificateInput>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let e = state.gateway.update_certificate(id, body.0).await?;
    Ok(reply(&req, StatusCode::OK, &view(&state, &e)))
}

pub async fn delete(
    _auth: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.gateway.delete_certificate(parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
