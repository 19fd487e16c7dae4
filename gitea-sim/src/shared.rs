//! What the HTTP faces (`api`, `rpc`, `control`, `webhook`) and the [`SimHandle`] share: the
//! simulator's state under its lock and the queue of webhooks it produced. A leaf: it imports
//! none of the modules that use it.
//!
//! [`SimHandle`]: crate::SimHandle

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

use crate::agent::AgentHandle;
use crate::clock::SimClock;
use crate::state::{Outgoing, State};
use crate::types::Delivery;

/// One agent started through the control API.
pub(crate) struct ControlAgent {
    pub id: u64,
    pub name: String,
    pub handle: Arc<AgentHandle>,
}

/// What the HTTP handlers share.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub clock: SimClock,
    pub admin_token: String,
    pub webhook_timeout: Duration,
    hooks: mpsc::UnboundedSender<Outgoing>,
    pub deliveries: Mutex<Vec<Delivery>>,
    pub pending_hooks: AtomicUsize,
    pub hooks_idle: Notify,
    pub agents: Mutex<Vec<ControlAgent>>,
    pub next_agent: AtomicUsize,
}

impl Shared {
    /// The state of a new simulator; the webhooks its changes produce go to `hooks`.
    pub(crate) fn new(
        state: State,
        clock: SimClock,
        admin_token: String,
        webhook_timeout: Duration,
        hooks: mpsc::UnboundedSender<Outgoing>,
    ) -> Self {
        Self {
            state: Mutex::new(state),
            clock,
            admin_token,
            webhook_timeout,
            hooks,
            deliveries: Mutex::new(Vec::new()),
            pending_hooks: AtomicUsize::new(0),
            hooks_idle: Notify::new(),
            agents: Mutex::new(Vec::new()),
            next_agent: AtomicUsize::new(1),
        }
    }

    /// Runs `f` on the state under the lock, then queues the webhooks it produced.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State, i64) -> R) -> R {
        let now = self.clock.now_ms();
        let (r, out) = {
            let mut st = self.state.lock();
            let r = f(&mut st, now);
            (r, std::mem::take(&mut st.outbox))
        };
        for o in out {
            self.pending_hooks.fetch_add(1, Ordering::SeqCst);
            if self.hooks.send(o).is_err() {
                self.pending_hooks.fetch_sub(1, Ordering::SeqCst);
            }
        }
        r
    }

    pub(crate) fn base_url(&self) -> String {
        self.state.lock().base_url.clone()
    }
}
