//! Errors of the buffer crate.

/// Why a buffer operation was refused; the buffer is unchanged when one is returned.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// A size or count is zero.
    #[error("`{name}` must be greater than zero")]
    ZeroSize {
        /// What was zero.
        name: &'static str,
    },
    /// The default window is longer than the buffer.
    #[error("window_size {window_size} exceeds buffer_size {buffer_size}")]
    WindowLargerThanBuffer {
        /// The window length.
        window_size: usize,
        /// The capacity.
        buffer_size: usize,
    },
    /// A time window length is zero, negative or not finite.
    #[error("a time window must be a positive number of seconds, not {seconds}")]
    InvalidDuration {
        /// The offending length.
        seconds: f64,
    },
    /// A sample has the wrong number of values.
    #[error("a sample must have {expected} values, got {got}")]
    WrongWidth {
        /// Values per sample of this buffer.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("value {value} is not finite")]
    NonFinite {
        /// The offending value.
        value: f64,
    },
    /// The buffer is full and its policy rejects new samples.
    #[error("buffer is full ({capacity} samples) and rejects new samples")]
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// A new stream buffer would exceed the pool's memory budget.
    #[error("a new buffer of {needed} bytes would exceed the budget ({used} of {budget} bytes used)")]
    BudgetExceeded {
        /// Bytes the new buffer needs.
        needed: usize,
        /// Bytes in use.
        used: usize,
        /// The budget.
        budget: usize,
    },
}
