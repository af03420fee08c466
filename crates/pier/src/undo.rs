//! Rollback as a type: [`Undo`] holds a value that something made (a state directory, a
//! cgroup, a spawned child) and undoes it on drop unless [`Undo::keep`] took it, so an early
//! return with `?` rolls back everything made so far, in reverse order.

use std::ops::{Deref, DerefMut};

/// `value`, undone by `undo` when dropped unless kept.
pub struct Undo<T> {
    value: Option<T>,
    undo: fn(T),
}

impl<T> Undo<T> {
    /// Guard `value`: `undo(value)` runs on drop.
    pub fn new(value: T, undo: fn(T)) -> Undo<T> {
        Undo {
            value: Some(value),
            undo,
        }
    }

    /// Commit: the value is kept, nothing is undone.
    pub fn keep(mut self) -> T {
        self.value
            .take()
            .expect("an Undo holds its value until kept or dropped")
    }
}

impl<T> Deref for Undo<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value
            .as_ref()
            .expect("an Undo holds its value until kept or dropped")
    }
}

impl<T> DerefMut for Undo<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
            .as_mut()
            .expect("an Undo holds its value until kept or dropped")
    }
}

impl<T> Drop for Undo<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            (self.undo)(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Undo;
    use std::cell::Cell;

    thread_local!(static UNDONE: Cell<u32> = const { Cell::new(0) });

    fn count(_: u32) {
        UNDONE.with(|u| u.set(u.get() + 1));
    }

    #[test]
    fn dropped_is_undone_kept_is_not() {
        drop(Undo::new(1, count));
        assert_eq!(UNDONE.with(Cell::get), 1);
        assert_eq!(Undo::new(2, count).keep(), 2);
        assert_eq!(UNDONE.with(Cell::get), 1);
    }
}
