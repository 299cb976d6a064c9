//! The customer's side of a session besides `submit`: reading the form a link asks for.

use super::Vault;
use super::ops::key_for;
use crate::error::{Error, Result};
use crate::events::{PublishedEvent, SessionEventKind};
use crate::form::FormSpec;
use crate::session::{SessionId, SessionState};

impl Vault {
    /// The form a customer's link asks for, while its session waits for it; `None` for an
    /// unknown, expired or no longer pending session. Changes nothing.
    ///
    /// The customer's link does not name a tenant, so, like [`Vault::submit`], this finds
    /// the session by its id alone, whatever tenant this vault acts for. It returns only the
    /// form: the agent's metadata and times stay on the agent side ([`Vault::status`]).
    ///
    /// # Errors
    /// `INTEGRITY_ERROR`; `KEY_UNAVAILABLE`; `STORE_UNAVAILABLE`.
    pub async fn pending_form(&self, id: &SessionId) -> Result<Option<FormSpec>> {
        match self.inner.load(&key_for(id), id, None).await {
            Ok(loaded) if loaded.record.state == SessionState::Pending => {
                Ok(Some(loaded.record.form))
            }
            Ok(_) | Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Vault::pending_form`] for the customer's form page, announcing `opened` to the
    /// session's watchers when the session is pending. The event is informative only: a
    /// chat's link preview fetches the page too, and the fetch changes nothing.
    ///
    /// # Errors
    /// `INTEGRITY_ERROR`; `KEY_UNAVAILABLE`; `STORE_UNAVAILABLE`.
    pub async fn form_opened(&self, id: &SessionId) -> Result<Option<FormSpec>> {
        let key = key_for(id);
        match self.inner.load(&key, id, None).await {
            Ok(loaded) if loaded.record.state == SessionState::Pending => {
                let event = PublishedEvent::new(
                    SessionEventKind::Opened,
                    SessionState::Pending,
                    loaded.attempts_left(),
                    self.inner.clock.now_millis(),
                );
                if let Err(e) = self
                    .inner
                    .store
                    .publish(&key, &event.seal(&loaded.crypto))
                    .await
                {
                    tracing::debug!(target: "pci_vault", code = %e.code(), "opened event not published");
                }
                Ok(Some(loaded.record.form))
            }
            Ok(_) | Err(Error::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
