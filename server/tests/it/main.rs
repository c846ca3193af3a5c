//! The API in-process over the memory store: every answer's status, headers and body.

mod api;
