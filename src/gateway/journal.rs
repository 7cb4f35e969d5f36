//! The registry's journal on the store: room reserved and records sent while the registry holds
//! the user's lock, so the disk sees each device's changes in memory's order.

use super::*;
use crate::registry::{Change, Journal};
use crate::store::{CommitTicket, StorePermit};

/// Collects the tickets of the writes one operation makes.
pub(crate) struct StoreJournal<'a> {
    store: &'a StoreHandle,
    /// Room reserved by `reserve`, used by the next `write`.
    permit: Option<StorePermit<'a>>,
    tickets: Vec<CommitTicket>,
}

impl<'a> StoreJournal<'a> {
    pub(crate) fn new(store: &'a StoreHandle) -> Self {
        StoreJournal {
            store,
            permit: None,
            tickets: Vec::new(),
        }
    }

    /// Done when every write made through this journal is on disk; `None` when there were
    /// none.
    pub(crate) fn ticket(self) -> Option<CommitTicket> {
        (!self.tickets.is_empty()).then(|| CommitTicket::join(self.tickets))
    }
}

impl Journal for StoreJournal<'_> {
    fn reserve(&mut self) -> Result<(), RegistryError> {
        if self.permit.is_none() {
            self.permit = Some(self.store.reserve().map_err(|_| RegistryError::Busy)?);
        }
        Ok(())
    }

    fn write(&mut self, changes: Vec<Change>) {
        let ops = changes
            .into_iter()
            .map(|(user, device, record)| StoreOp::PutDevice {
                user: user.to_string(),
                device: device.to_string(),
                record,
            })
            .collect();
        match self.permit.take() {
            Some(p) => self.tickets.push(p.send(ops)),
            // The registry reserves before every write; a write without room is a bug there.
            None => tracing::error!("a registry write without reserved room was not persisted"),
        }
    }
}
