//! [`Hint`]: the fix for an error, kept apart from its message.
//!
//! An error's `Display` says what went wrong (naming the file and the field) and does not
//! repeat its `source()`: the chain carries that. What to do about it is the hint, which
//! the CLI prints on its own line after the chain (`  fix: ...`), as uv prints `hint:`.

/// An error that may know how the user fixes it.
pub trait Hint {
    /// The fix, one sentence without the `fix:` label; `None` when there is nothing
    /// better to say than the message.
    fn hint(&self) -> Option<String>;
}
