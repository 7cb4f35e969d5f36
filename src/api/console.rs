//! The web console: a few static files embedded in the binary, served under `/console`.
//!
//! The console signs in with the admin token and calls the native `/v1` API from the browser;
//! this module only hands out its files. Names are looked up in a fixed table, so a request
//! can never reach the file system (no path traversal by construction).

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// One embedded file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file the console has; anything else under `/console/` is 404.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/dom.js"),
    },
    Asset {
        name: "certificates.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/certificates.js"),
    },
    Asset {
        name: "diagnosis.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/diagnosis.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../console/favicon.svg"),
    },
];

/// Self only: no inline script or style, no framing, and API calls to this origin alone.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Revalidate every time: the names are not versioned, and a new binary may bring new files.
/// The ETag keeps the revalidation to a 304.
const CACHE_CONTROL: &str = "no-cache";

/// Registers `GET /console`, `GET /console/` and `GET /console/{file}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(redirect_to_index))
        .route("/console/", web::get().to(index))
        .route("/console/{file}", web::get().to(file));
}

/// The pages load `./app.js` relative to the document, so the index must live under `/console/`.
async fn redirect_to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn file(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    serve(&req, &name)
}

fn serve(req: &HttpRequest, name: &str) -> HttpResponse {
    let Some((asset, etag)) = ASSETS
        .iter()
        .zip(etags())
        .find(|(asset, _)| asset.name == name)
    else {
        return with_security_headers(HttpResponse::NotFound()).json(serde_json::json!({
            "error": {"code": "not_found", "message": "No such console file."}
        }));
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    if fresh {
        return with_security_headers(HttpResponse::NotModified())
            .insert_header((header::ETAG, etag.as_str()))
            .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
            .finish();
    }
    with_security_headers(HttpResponse::Ok())
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ))
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .body(asset.body)
}

fn with_security_headers(
    mut builder: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    builder
}

/// Strong ETags, one per asset in table order, hashed once on first use.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;
    use actix_web::{test, App};

    #[actix_web::test]
    async fn serves_each_asset_with_its_content_type_and_security_headers() {
        let app = test::init_service(App::new().configure(configure)).await;
        let cases = [
            ("/console/", "text/html; charset=utf-8"),
            ("/console/index.html", "text/html; charset=utf-8"),
            ("/console/app.js", "text/javascript; charset=utf-8"),
            ("/console/api.js", "text/javascript; charset=utf-8"),
            ("/console/dom.js", "text/javascript; charset=utf-8"),
            ("/console/certificates.js", "text/javascript; charset=utf-8"),
            ("/console/diagnosis.js", "text/javascript; charset=utf-8"),
            ("/console/style.css", "text/css; charset=utf-8"),
            ("/console/favicon.svg", "image/svg+xml"),
        ];
        for (path, content_type) in cases {
            let resp =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let headers = resp.headers();
            assert_eq!(
                headers.get(header::CONTENT_TYPE).unwrap(),
                content_type,
                "{path}"
            );
            assert_eq!(
                headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
                "nosniff",
                "{path}"
            );
            assert_eq!(
                headers.get(header::CACHE_CONTROL).unwrap(),
                CACHE_CONTROL,
                "{path}"
            );
            let csp = headers
                .get(header::CONTENT_SECURITY_POLICY)
                .unwrap()
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe"), "{path}: {csp}");
            let body = test::read_body(resp).await;
            assert!(!body.is_empty(), "{path}");
        }
    }

    /// Relative names after `marker` up to the closing quote, e.g. `src="app.js"`.
    fn referenced(text: &str, marker: &str, quote: char) -> Vec<String> {
        text.match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &text[at + marker.len()..];
                rest.find(quote).map(|end| rest[..end].to_string())
            })
            .map(|name| name.trim_start_matches("./").to_string())
            .filter(|name| !name.contains(':') && !name.starts_with('#'))
            .collect()
    }

    #[actix_web::test]
    async fn every_file_the_pages_load_is_embedded() {
        let mut wanted = Vec::new();
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).unwrap();
            if asset.name.ends_with(".html") {
                wanted.extend(referenced(text, "src=\"", '"'));
                wanted.extend(referenced(text, "href=\"", '"'));
            }
            if asset.name.ends_with(".js") {
                wanted.extend(referenced(text, "from './", '\''));
            }
        }
        assert!(wanted.contains(&"app.js".to_string()), "{wanted:?}");
        assert!(wanted.contains(&"dom.js".to_string()), "{wanted:?}");
        for name in wanted {
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "{name} is referenced but not in ASSETS"
            );
        }
    }

    #[actix_web::test]
    async fn bare_console_path_redirects_to_the_index() {
        let app = test::init_service(App::new().configure(configure)).await;
        let resp =
            test::call_service(&app, test::TestRequest::get().uri("/console").to_request()).await;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(resp.headers().get(header::LOCATION).unwrap(), "/console/");
    }

    #[actix_web::test]
    async fn unknown_names_and_traversal_attempts_are_404() {
        let app = test::init_service(App::new().configure(configure)).await;
        for path in [
            "/console/nope.js",
            "/console/..%2FCargo.toml",
            "/console/%2e%2e%2fsrc%2flib.rs",
            "/console/../Cargo.toml",
            "/console/sub/app.js",
        ] {
            let resp =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[actix_web::test]
    async fn a_matching_etag_answers_not_modified() {
        let app = test::init_service(App::new().configure(configure)).await;
        let resp = test::call_service(
            &app,
            test::TestRequest::get().uri("/console/app.js").to_request(),
        )
        .await;
        let etag = resp.headers().get(header::ETAG).unwrap().clone();
        let resp = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/console/app.js")
                .insert_header((header::IF_NONE_MATCH, etag))
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    }
}
