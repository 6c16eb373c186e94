//! DPoP (RFC 9449): the proof a client sends with a DPoP-bound access token, checked without
//! I/O ([`check_proof`]), the memory of proofs already used ([`ReplayCache`]; the shared one
//! is the session store's Redis, `RedisStore::first_use`), and the nonces the gateway issues
//! when a route asks for them ([`NonceIssuer`]).
//!
//! A proof is checked in this order, stopping at the first failure, so that the costly step
//! (the signature) runs only for a proof made with the token's own key: size and shape → JOSE
//! header (`typ: dpop+jwt`, `alg` from the allowlist, never `none`/`HS*`, no `crit`) → `jwk`
//! (public members only, a key type that fits `alg`) → its RFC 7638 thumbprint equals the
//! token's `cnf.jkt` → signature → claims (`htm`, `htu`, `iat` within the window, `ath`).
//! The caller then checks the nonce, if the route issues them, and the `jti` last, so a proof
//! that fails any other check never takes room in the replay memory.

mod htu;
mod nonce;
mod proof;
mod replay;

pub use htu::normalize_htu;
pub use nonce::NonceIssuer;
pub use proof::{
    access_token_hash, check_proof, jwk_thumbprint, CheckedProof, ProofError, ProofRequest,
    ProofRules, MAX_PROOF_BYTES,
};
pub use replay::{replay_key, ReplayCache, ReplayError, DEFAULT_REPLAY_CAPACITY};
