//! The route's DPoP keys (RFC 9449): `dpop`, `dpop-proof-window`, `dpop-nonce`. One const
//! snippet per invalid value class, asserting line, key and message.

use std::time::Duration;

use crate::tests::{assert_error, errs, ok};
use crate::tests_resource::with_route;
use crate::{DpopMode, DEFAULT_DPOP_PROOF_WINDOW};

#[test]
fn dpop_keys_parse_and_default_to_off() {
    let c = ok(&with_route(
        "        dpop: required\n        dpop-proof-window: 2m\n        dpop-nonce: true\n",
    ));
    let dpop = c.tenants[0].routes[0].dpop;
    assert_eq!(dpop.mode, DpopMode::Required);
    assert_eq!(dpop.proof_window, Duration::from_secs(120));
    assert!(dpop.nonce);
    let optional = ok(&with_route("        dpop: optional\n"));
    let dpop = optional.tenants[0].routes[0].dpop;
    assert_eq!(
        (dpop.mode, dpop.proof_window, dpop.nonce),
        (DpopMode::Optional, DEFAULT_DPOP_PROOF_WINDOW, false)
    );
    assert_eq!(DEFAULT_DPOP_PROOF_WINDOW, Duration::from_secs(60));
    for plain in ["", "        dpop: off\n"] {
        let c = ok(&with_route(plain));
        assert_eq!(c.tenants[0].routes[0].dpop, crate::Dpop::default());
        assert_eq!(c.tenants[0].routes[0].dpop.mode, DpopMode::Off);
    }
}

#[test]
fn dpop_is_required_optional_or_off() {
    for value in ["yes", "true", "Required", "\"\""] {
        let src = with_route(&format!("        dpop: {value}\n"));
        assert_error(
            &errs(&src),
            16,
            "tenants[0].routes[0].dpop",
            "(required, optional or off)",
        );
    }
}

#[test]
fn the_proof_window_is_between_one_second_and_ten_minutes() {
    for value in ["0s", "500ms", "11m", "1h"] {
        let src = with_route(&format!(
            "        dpop: required\n        dpop-proof-window: {value}\n"
        ));
        assert_error(
            &errs(&src),
            17,
            "tenants[0].routes[0].dpop-proof-window",
            "must be between 1s and 10m",
        );
    }
    let src = with_route("        dpop: required\n        dpop-proof-window: soon\n");
    assert_error(
        &errs(&src),
        17,
        "tenants[0].routes[0].dpop-proof-window",
        "",
    );
}

#[test]
fn nonce_and_window_need_dpop() {
    let src = with_route("        dpop-nonce: true\n");
    assert_error(
        &errs(&src),
        16,
        "tenants[0].routes[0].dpop-nonce",
        "has dpop-nonce but no dpop",
    );
    let src = with_route("        dpop: off\n        dpop-proof-window: 30s\n");
    assert_error(
        &errs(&src),
        17,
        "tenants[0].routes[0].dpop-proof-window",
        "has dpop-proof-window but no dpop",
    );
    let src = with_route("        dpop: required\n        dpop-nonce: maybe\n");
    assert_error(&errs(&src), 17, "tenants[0].routes[0].dpop-nonce", "");
}

#[test]
fn a_white_listed_route_has_no_dpop() {
    let src = with_route("        white-listed: true\n        dpop: optional\n");
    assert_error(
        &errs(&src),
        16,
        "tenants[0].routes[0].white-listed",
        "white-listed (no authentication) but also has dpop",
    );
}

#[test]
fn an_anonymous_route_cannot_require_dpop() {
    let src = with_route("        white-listed-anon: true\n        dpop: required\n");
    assert_error(
        &errs(&src),
        17,
        "tenants[0].routes[0].dpop",
        "dpop can be optional there, not required",
    );
    let c = ok(&with_route(
        "        white-listed-anon: true\n        dpop: optional\n",
    ));
    assert_eq!(c.tenants[0].routes[0].dpop.mode, DpopMode::Optional);
}
