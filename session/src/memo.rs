//! A value computed on first use and kept with the struct that owns it.

use std::sync::OnceLock;

/// Computed on first use ([`Memo::get_or_init`]) and kept. Invisible to `Clone` (a clone
/// starts empty: the copy may be changed, so it computes its own) and to `==` (a cache of the
/// owner's other fields is never a difference).
pub struct Memo<T>(OnceLock<T>);

impl<T> Memo<T> {
    /// The kept value, computing it with `init` on first use.
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(init)
    }

    /// The kept value, if computed.
    pub fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(OnceLock::new())
    }
}

impl<T> Clone for Memo<T> {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(kept)"
        } else {
            "Memo(empty)"
        })
    }
}
