//! What every front-end puts on its wire, projected once here: the spellings and plain data
//! the Node and uniffi bindings and the HTTP server hand to their hosts. Front-ends wrap
//! these in their own types (a napi object, a uniffi record, a JSON body) and add nothing.

use crate::audit::AuditOutcome;
use crate::error::Error;
use crate::events::SessionEventKind;
use crate::form::RevealedForm;
use crate::session::{SessionState, SessionStatus};

impl SessionState {
    /// Every state, in the order of a session's life.
    pub const ALL: [SessionState; 5] = [
        SessionState::Pending,
        SessionState::Submitted,
        SessionState::Revealed,
        SessionState::Cancelled,
        SessionState::Locked,
    ];
}

impl SessionEventKind {
    /// Every kind, in the order of a session's life.
    pub const ALL: [SessionEventKind; 8] = [
        SessionEventKind::Created,
        SessionEventKind::Opened,
        SessionEventKind::Submitted,
        SessionEventKind::RevealFailed,
        SessionEventKind::Revealed,
        SessionEventKind::Locked,
        SessionEventKind::Cancelled,
        SessionEventKind::Expired,
    ];
}

impl AuditOutcome {
    /// The wire spelling: `success`, or the stable code the action failed with.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure(code) => code.as_str(),
        }
    }
}

impl SessionStatus {
    /// The names of the fields the form asks for, in order.
    pub fn field_names(&self) -> Vec<String> {
        self.form
            .fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect()
    }

    /// The submitted card's brand name and masked number (first 6 and last 4 digits), while
    /// the session is submitted: safe to show and to log.
    pub fn card_view(&self) -> Option<(&'static str, String)> {
        self.card
            .as_ref()
            .map(|c| (c.brand.as_str(), c.masked_number.clone()))
    }

    /// The labels given at creation, as owned pairs to collect into the host's map type.
    pub fn metadata_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.metadata
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    }
}

impl RevealedForm {
    /// The revealed card's brand name and masked number (first 6 and last 4 digits), when
    /// the form has a card number: safe to show and to log.
    pub fn card_view(&self) -> Option<(&'static str, String)> {
        self.card()
            .map(|c| (c.brand.as_str(), c.masked_number.clone()))
    }
}

impl Error {
    /// `WRONG_PIN`: the wrong PINs still allowed; `None` for every other error.
    pub fn attempts_left(&self) -> Option<u8> {
        match self {
            Error::WrongPin { attempts_left } => Some(*attempts_left),
            _ => None,
        }
    }

    /// `VALIDATION_FAILED`: each failing field as `(field, reason)` in wire spellings, never
    /// a value; `None` for every other error.
    pub fn field_problems(&self) -> Option<Vec<(String, &'static str)>> {
        match self {
            Error::ValidationFailed { fields } => Some(
                fields
                    .iter()
                    .map(|f| (f.field.clone(), f.reason.as_str()))
                    .collect(),
            ),
            _ => None,
        }
    }
}
