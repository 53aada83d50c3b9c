//! Message validation: JSON Schema on text messages and MessagePack on binary messages.
//!
//! Not implemented yet: a policy that asks for it is refused at start-up (and on configure) with a
//! clear error rather than silently running without it.

use crate::options::PolicyOptions;

/// A validation setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The option is recognised but this build cannot honour it.
    #[error("`{option}` is not supported by this build yet")]
    Unsupported {
        /// The option's kebab-case name.
        option: &'static str,
    },
}

/// The compiled validators of one policy.
#[derive(Debug, Default)]
pub struct Validator {}

impl Validator {
    /// Compiles the validators the policy asks for.
    pub fn new(options: &PolicyOptions) -> Result<Self, ValidateError> {
        if options.json_schema.is_some() {
            return Err(ValidateError::Unsupported {
                option: "json-schema",
            });
        }
        if options.msgpack_validation || options.msgpack_schema.is_some() {
            return Err(ValidateError::Unsupported {
                option: "msgpack-validation",
            });
        }
        Ok(Validator {})
    }

    /// True when nothing is validated.
    pub fn is_empty(&self) -> bool {
        true
    }
}
