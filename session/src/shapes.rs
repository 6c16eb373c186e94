//! Lenient typed reads of the payload members gatehouse lifts into [`crate::Claims`], in the
//! same pass that finds them: a member of an unexpected type reads as absent or empty (what a
//! lookup in a JSON tree would find), never as an error, and whatever is not kept is skipped
//! without allocating.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A JSON shape read leniently: every kind of value the shape does not expect reads as
/// `Self::default()`.
pub(crate) trait Shape: Default + Sized {
    fn from_text(_text: &str) -> Self {
        Self::default()
    }

    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }

    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
}

/// Deserializes any JSON value into the shape `T`.
pub(crate) struct Lenient<T>(pub T);

impl<'de, T: Shape> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ShapeVisitor(PhantomData))
            .map(Lenient)
    }
}

struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Shape> Visitor<'de> for ShapeVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_str<E>(self, text: &str) -> Result<T, E> {
        Ok(T::from_text(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// A JSON string; `None` for anything else.
impl Shape for Option<String> {
    fn from_text(text: &str) -> Self {
        Some(text.to_owned())
    }
}

/// The string elements of a JSON array (other elements skipped); empty for anything else.
#[derive(Default)]
pub(crate) struct StringList(pub Vec<String>);

impl Shape for StringList {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Lenient(item)) = seq.next_element::<Lenient<Option<String>>>()? {
            items.extend(item);
        }
        Ok(StringList(items))
    }
}

/// `aud`: a string, or the string elements of an array.
#[derive(Default)]
pub(crate) struct Audiences(pub Vec<String>);

impl Shape for Audiences {
    fn from_text(text: &str) -> Self {
        Audiences(vec![text.to_owned()])
    }

    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        StringList::from_seq(seq).map(|l| Audiences(l.0))
    }
}

/// `{"roles": [...], ...}` (Keycloak's `realm_access` and each `resource_access` client): the
/// string roles. A repeated `roles` keeps the last, as a JSON tree does.
#[derive(Default)]
pub(crate) struct Roles(pub Vec<String>);

impl Shape for Roles {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut roles = Vec::new();
        while let Some(position) = map.next_key_seed(KeyIn(&["roles"]))? {
            if position.is_some() {
                roles = map.next_value::<Lenient<StringList>>()?.0 .0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Roles(roles))
    }
}

/// `resource_access`: every client's roles, ordered by client name and a repeated client
/// keeping the last, as in a JSON tree (`serde_json::Map` is sorted).
#[derive(Default)]
pub(crate) struct ClientRoles(pub Vec<(String, Vec<String>)>);

impl Shape for ClientRoles {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut clients: Vec<(String, Vec<String>)> = Vec::new();
        while let Some(client) = map.next_key::<String>()? {
            let Lenient(Roles(roles)) = map.next_value()?;
            clients.push((client, roles));
        }
        // Stable: of equal names the later stays later, and `dedup_by` keeps it.
        clients.sort_by(|a, b| a.0.cmp(&b.0));
        clients.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Ok(ClientRoles(clients))
    }
}

/// An object key looked up in a list of names without allocating it (serde's `Cow<str>`
/// always allocates a key): its first position there, if any.
pub(crate) struct KeyIn<'k>(pub &'k [&'k str]);

impl<'de> DeserializeSeed<'de> for KeyIn<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIn<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == key))
    }
}

/// `cnf` (RFC 7800): whether the token is bound to a key at all, and its `jkt` (RFC 9449: the
/// SHA-256 thumbprint of a DPoP key) when that is a string. Any `cnf` other than `null`, a
/// boolean or a number binds the token, so a confirmation gatehouse cannot check (`x5t#S256`,
/// a malformed `jkt`) never makes a bound token pass as a bearer token.
#[derive(Default)]
pub(crate) struct Confirmation {
    pub present: bool,
    pub jkt: Option<String>,
}

impl Shape for Confirmation {
    fn from_text(_text: &str) -> Self {
        Confirmation {
            present: true,
            jkt: None,
        }
    }

    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::from_text(""))
    }

    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut jkt = None;
        while let Some(position) = map.next_key_seed(KeyIn(&["jkt"]))? {
            if position.is_some() {
                jkt = map.next_value::<Lenient<Option<String>>>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Confirmation { present: true, jkt })
    }
}
