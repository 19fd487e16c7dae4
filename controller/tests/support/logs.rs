//! Capturing what is logged on the test's own thread, for tests of what gets logged.

use std::sync::{Arc, Mutex};

/// Log lines written while a test runs (this thread only).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures every event (all levels) logged on this thread until the guard is dropped.
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The captured lines containing `text`.
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        let all = String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned();
        all.lines()
            .filter(|l| l.contains(text))
            .map(str::to_owned)
            .collect()
    }
}
