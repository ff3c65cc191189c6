//! Interning of the few distinct names the rules key on (marketplaces,
//! sellers) so that a shipment holds a small id instead of a string.
//! Ids are dense and assigned in first-seen order, so they depend only on
//! the input and survive a snapshot as the list of names. Id 0 is the empty
//! name, also used when an interner is full (overrides then fall back to the
//! marketplace or default rules; the bound is the configured maximum).

use std::collections::HashMap;

use crate::ops::hash::NameHash;

#[derive(Debug, Clone)]
pub(crate) struct Interner {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32, NameHash>,
    max: usize,
    bytes: usize,
}

impl Interner {
    pub(crate) fn new(max: usize) -> Interner {
        let mut i = Interner {
            names: Vec::new(),
            ids: HashMap::default(),
            max: max.max(1),
            bytes: 0,
        };
        i.names.push("".into());
        i.ids.insert("".into(), 0);
        i
    }

    /// The id of `name`, interning it; 0 when the interner is full.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        if self.names.len() >= self.max {
            return 0;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        self.bytes += 2 * name.len();
        id
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |s| s)
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|s| &**s)
    }

    /// Approximate heap bytes (names twice, the vector, the map's entries).
    pub(crate) fn bytes_held(&self) -> usize {
        self.bytes + self.names.capacity() * 16 + self.ids.capacity() * 24
    }
}
