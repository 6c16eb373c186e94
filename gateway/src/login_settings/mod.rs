//! What the runtime compiles for browser login, apart from the login endpoints: each login
//! tenant's settings (`tenant.rs`) and the gateway's own cookie names, removed before proxying
//! (`cookies.rs`). Kept outside `login/` because the runtime holds them and the endpoints in
//! `login/` read the request context, which holds the runtime: one module for both would make
//! an import cycle.

pub(crate) mod cookies;
pub(crate) mod tenant;
