//! The judgements, by the language they read: markup (tags, attributes, declarations), URIs, CSS,
//! script without markup, and server-side templates.

pub(super) mod css;
pub(super) mod markup;
pub(super) mod script;
pub(super) mod template;
pub(super) mod uri;
