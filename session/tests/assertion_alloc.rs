//! A warm identity assertion (kept with the caller's claims) is handed out without allocating:
//! counted by a global allocator that tallies the calling thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use gatehouse_config::{AssertionAlgorithm, AssertionKey, IdentityAssertion};
use gatehouse_session::assertion::AssertionSigner;
use gatehouse_session::claims::Claims;
use gatehouse_test_support::keys::{Kind, TestKey};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialized thread-local `Cell`, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_cache_hit_does_not_allocate_and_a_miss_does() {
    for (kind, algorithm) in [
        (Kind::P256, AssertionAlgorithm::Es256),
        (Kind::Ed25519, AssertionAlgorithm::EdDsa),
    ] {
        let signer = AssertionSigner::new(&IdentityAssertion {
            header: "X-Gatehouse-Assertion".into(),
            signing_keys: vec![AssertionKey::new(
                PathBuf::from("k.pem"),
                algorithm,
                TestKey::generate(kind, "k").pkcs8_der(),
            )],
            ttl: Duration::from_secs(60),
            audience: None,
        })
        .unwrap();
        let claims = Claims::from_payload(serde_json::json!({
            "sub": "alice", "email": "a@example.com", "groups": ["/dev"],
            "realm_access": {"roles": ["admin"]}
        }));
        let t = 1_000_000;
        let before = allocations();
        let first = signer.assertion(&claims, 0, "app", true, "demo.example", t);
        assert!(
            allocations() > before,
            "a miss signs and keeps the assertion"
        );
        // The first hand-out after the miss may share the value once; count from the second.
        drop(signer.assertion(&claims, 0, "app", true, "Demo.Example", t + 1));
        let before = allocations();
        for i in 0..1000 {
            let v = signer.assertion(&claims, 0, "app", true, "demo.example", t + i % 40);
            assert_eq!(v, first);
        }
        assert_eq!(allocations() - before, 0, "{algorithm:?}: hits allocated");
    }
}
