//! gatehouse sessions and tokens: bearer-token verification (OIDC discovery, JWKS, the
//! verified-token cache), the OIDC code-flow client, cookies and session stores.
//!
//! Empty until the authentication issues land; the crate exists now so the workspace has its
//! final shape and the gateway's dependency graph does not change when it fills in.
#![forbid(unsafe_code)]
