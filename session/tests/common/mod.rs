//! The shared test support (`testing/support`) under the names these tests use: keys and token
//! minting, the base provider config, and the counting fake IdP.
#![allow(unused_imports)] // each test binary uses a different part of this module

pub use gatehouse_test_support::config::{
    claims, introspecting_provider, provider, CLIENT_ID, CLIENT_SECRET,
};
pub use gatehouse_test_support::fake_idp::{form_decode, AuthRecord, FakeIdp};
pub use gatehouse_test_support::keys::{b64, default_alg, jwks, keys, now, Keys, Kind, TestKey};
pub use gatehouse_test_support::process::temp_file;
