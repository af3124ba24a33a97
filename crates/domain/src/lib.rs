//! Herald's domain: the types every layer shares, their validation, template rendering and the
//! per-user decision engine. Pure: no I/O, no clock reads (the caller passes `now`).

pub mod channel;
pub mod code;
pub mod contact;
pub mod decision;
pub mod delivery;
pub mod device;
pub mod digest;
pub mod error;
pub mod ids;
pub mod notification;
pub mod overload;
pub mod preferences;
pub mod quiet;
pub mod reason;
pub mod recipient;
pub mod sms;
pub mod template;
pub mod user;
pub mod window;

pub use channel::{Channel, Class};
pub use delivery::DeliveryStatus;
pub use error::{FieldError, ValidationErrors};
pub use ids::{TemplateKey, UserId};
pub use recipient::RecipientState;
