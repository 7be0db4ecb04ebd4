//! JSON pointers (RFC 6901) into a document, built segment by segment: where a problem is, so
//! that it can be reported at the line and column the author wrote it.

use std::fmt;

use crate::model::OneOrMany;

/// A place in a document, e.g. `/actions/track/request/body/email`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pointer(String);

impl Pointer {
    /// The whole document.
    pub fn root() -> Pointer {
        Pointer(String::new())
    }

    /// The member `key` of the value here (`~` and `/` in it escaped).
    #[must_use]
    pub fn key(&self, key: &str) -> Pointer {
        let mut text = String::with_capacity(self.0.len() + key.len() + 1);
        text.push_str(&self.0);
        text.push('/');
        for c in key.chars() {
            match c {
                '~' => text.push_str("~0"),
                '/' => text.push_str("~1"),
                c => text.push(c),
            }
        }
        Pointer(text)
    }

    /// Item `index` of the list here.
    #[must_use]
    pub fn index(&self, index: usize) -> Pointer {
        Pointer(format!("{}/{index}", self.0))
    }

    /// Item `index` of `list` written here: the list's item, or the value itself when it was
    /// written as one value rather than a list.
    #[must_use]
    pub fn item<T>(&self, list: &OneOrMany<T>, index: usize) -> Pointer {
        match list {
            OneOrMany::One(_) => self.clone(),
            OneOrMany::Many(_) => self.index(index),
        }
    }

    /// The pointer's text, `""` for the whole document.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `actions.track.when`, `a.from[1]`: the place as a mapping's author reads it.
    pub fn display(&self) -> String {
        crate::source_map::display_pointer(&self.0)
    }
}

impl AsRef<str> for Pointer {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped_and_items_indexed() {
        let at = Pointer::root().key("http").key("headers").key("a/b~c");
        assert_eq!(at.as_str(), "/http/headers/a~1b~0c");
        assert_eq!(at.display(), "http.headers.a/b~c");
        let from = Pointer::root().key("from");
        let many = OneOrMany::Many(vec!["$.a".to_owned(), "$.b".to_owned()]);
        assert_eq!(from.item(&many, 1).as_str(), "/from/1");
        let one = OneOrMany::One("$.a".to_owned());
        assert_eq!(from.item(&one, 0).as_str(), "/from");
    }
}
