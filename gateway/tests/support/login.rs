//! Drives the browser login flow over HTTP like a browser with a cookie jar: the gateway's
//! redirect to `/oauth/login`, the IdP's login form (`username`/`password`), the callback.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use reqwest::Url;

/// A browser: a cookie jar and a client that resolves `demo.localhost` to the gateway.
pub struct Browser {
    pub jar: Arc<Jar>,
    pub client: reqwest::Client,
    pub base: Url,
    rt: tokio::runtime::Runtime,
}

/// One response as a browser saw it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub url: Url,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    /// A fresh browser for the gateway at `gateway` serving `demo.localhost`.
    pub fn new(gateway: SocketAddr) -> Browser {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(Policy::none())
            .resolve("demo.localhost", gateway)
            .build()
            .unwrap();
        Browser {
            jar,
            client,
            base: Url::parse(&format!("http://demo.localhost:{}/", gateway.port())).unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// `GET url` (absolute or relative to the gateway) as a page navigation.
    pub fn get(&self, url: &str) -> Page {
        let url = self.base.join(url).unwrap();
        self.rt.block_on(async {
            let r = self
                .client
                .get(url.clone())
                .header("accept", "text/html,application/xhtml+xml")
                .send()
                .await
                .expect("request");
            page(url, r).await
        })
    }

    fn post_form(&self, url: Url, form: &[(&str, &str)]) -> Page {
        self.rt.block_on(async {
            let r = self
                .client
                .post(url.clone())
                .form(form)
                .send()
                .await
                .expect("request");
            page(url, r).await
        })
    }

    /// Follows redirects from `start` (not past the gateway's callback when `stop_at_callback`),
    /// submitting the IdP login form with `user`/`password` when it appears. Returns the last
    /// page, or the callback URL's page when stopping there.
    pub fn login_from(
        &self,
        start: &str,
        user: &str,
        password: &str,
        stop_at_callback: bool,
    ) -> Page {
        let mut page = self.get(start);
        for _ in 0..20 {
            if let Some(loc) = page.location.clone() {
                let next = page.url.join(&loc).unwrap();
                if stop_at_callback && next.path() == "/oauth/callback" {
                    return Page {
                        status: page.status,
                        url: next,
                        location: Some(loc),
                        body: String::new(),
                    };
                }
                page = self.get(next.as_str());
                continue;
            }
            if page.status == 200 && page.body.contains("name=\"username\"") {
                let action = page
                    .body
                    .split("action=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .expect("login form action")
                    .replace("&amp;", "&");
                let action = page.url.join(&action).unwrap();
                page = self.post_form(action, &[("username", user), ("password", password)]);
                continue;
            }
            return page;
        }
        panic!("too many redirects")
    }

    /// The `Cookie` header the jar sends to the gateway.
    pub fn cookies(&self) -> String {
        self.jar
            .cookies(&self.base)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// Sets a cookie for the gateway's host.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/"), &self.base);
    }
}

async fn page(url: Url, r: reqwest::Response) -> Page {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.text().await.unwrap_or_default();
    Page {
        status,
        url,
        location,
        body,
    }
}
