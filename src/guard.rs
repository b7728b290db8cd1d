//! Runs a third-party parser on a hostile file so that a panic inside it becomes an error value
//! that carries the panic's message, with nothing printed: no "thread panicked" line and no
//! backtrace, whatever `RUST_BACKTRACE` says. Does not retry, log or name the file (callers do).
//!
//! The panic hook is process-wide, so it is installed once and stays quiet only on a thread
//! that is inside [`quietly`]; every other panic (a bug of rfpq's own) is printed as before.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

thread_local! {
    /// How many [`quietly`] calls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last quiet panic on this thread happened (`file:line`).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic caught by [`quietly`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    /// The panic's message (`index out of bounds: the len is 0 but the index is 0`).
    pub message: String,
    /// Where it happened in the third-party code, when known (`pdf-extract-0.12.1/src/lib.rs:1805`).
    pub location: Option<String>,
}

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        match &self.location {
            Some(at) => write!(f, " at {at}"),
            None => Ok(()),
        }
    }
}

/// Runs `f`; a panic inside it is returned as [`Panicked`] instead of unwinding further, and
/// prints nothing.
pub fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| Panicked {
        message: payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("the parser failed")
            .to_string(),
        location: LOCATION.with(|l| l.borrow_mut().take()),
    })
}

/// Wraps the current hook once: silent (recording the location) inside [`quietly`], the
/// previous hook everywhere else.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 {
                let at = info.location().map(|l| {
                    // Keep the crate-relative part of a registry path.
                    let file = l.file();
                    let short = file
                        .rsplit_once("/registry/src/")
                        .and_then(|(_, rest)| rest.split_once('/').map(|(_, p)| p))
                        .unwrap_or(file);
                    format!("{short}:{}", l.line())
                });
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_place() {
        let caught = quietly(|| {
            let v: Vec<u8> = Vec::new();
            #[allow(clippy::useless_vec)]
            let i = vec![0usize][0];
            v[i]
        })
        .unwrap_err();
        assert_eq!(
            caught.message,
            "index out of bounds: the len is 0 but the index is 0"
        );
        assert!(
            caught
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("src/guard.rs:")),
            "{caught:?}"
        );
        assert_eq!(quietly(|| 7).unwrap(), 7);
    }

    #[test]
    fn nested_calls_stay_quiet_and_count_down() {
        let outer = quietly(|| quietly(|| panic!("inner")).unwrap_err().message);
        assert_eq!(outer.unwrap(), "inner");
        assert_eq!(DEPTH.with(Cell::get), 0);
    }
}
