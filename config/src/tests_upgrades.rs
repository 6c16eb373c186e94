//! Upgraded connections (WebSocket): the tenant's `upgrade-idle-timeout`; HTTP/2 without TLS:
//! the top-level `listen-h2c`. One const snippet per
//! invalid value class, asserting line, key and message.

use std::time::Duration;

use crate::tests::{assert_error, errs, ok, BASE};

#[test]
fn upgrade_idle_timeout_defaults_to_an_hour_and_takes_a_duration() {
    let c = ok(BASE);
    assert_eq!(c.tenants[0].upgrade_idle_timeout, Duration::from_secs(3600));
    let c = ok(&format!("{BASE}    upgrade-idle-timeout: 90s\n"));
    assert_eq!(c.tenants[0].upgrade_idle_timeout, Duration::from_secs(90));
    let c = ok(&format!("{BASE}    upgrade-idle-timeout: 120\n"));
    assert_eq!(c.tenants[0].upgrade_idle_timeout, Duration::from_secs(120));
}

#[test]
fn upgrade_idle_timeout_refuses_a_non_duration() {
    let e = errs(&format!("{BASE}    upgrade-idle-timeout: forever\n"));
    assert_error(
        &e,
        13,
        "tenants[0].upgrade-idle-timeout",
        "invalid duration \"forever\"",
    );
}

#[test]
fn upgrade_idle_timeout_refuses_zero() {
    let e = errs(&format!("{BASE}    upgrade-idle-timeout: 0s\n"));
    assert_error(
        &e,
        13,
        "tenants[0].upgrade-idle-timeout",
        "must be greater than zero",
    );
}

#[test]
fn upgrade_idle_timeout_refuses_a_list() {
    let e = errs(&format!("{BASE}    upgrade-idle-timeout: [1h]\n"));
    assert_error(
        &e,
        13,
        "tenants[0].upgrade-idle-timeout",
        "invalid duration a list",
    );
}

#[test]
fn listen_h2c_defaults_to_off_and_takes_a_boolean() {
    assert!(!ok(BASE).listen_h2c);
    assert!(ok(&format!("listen-h2c: true\n{BASE}")).listen_h2c);
    let e = errs(&format!("listen-h2c: sometimes\n{BASE}"));
    assert_error(&e, 1, "listen-h2c", "invalid boolean \"sometimes\"");
}
