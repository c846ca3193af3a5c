//! chainr's notifications: media named in a TOML configuration ([`config`]), the notifications
//! an event of a run makes ([`plan`], pure), what each medium is sent ([`message`], pure),
//! sending ([`send`]: webhooks, Slack, email, stdout), and the notifier's loops over a store and
//! its outbox ([`notifier`]). Delivery state lives in the store's
//! [`Outbox`](chainr_runtime::outbox::Outbox), so a notifier can die at any point and another
//! goes on: nothing is lost, and what was in flight is sent again under the same id.

pub mod config;
pub mod message;
pub mod notifier;
pub mod plan;
pub mod send;

pub use config::{Config, ConfigError};
pub use notifier::Notifier;
