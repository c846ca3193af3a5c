//! The API in-process over the memory store: every answer's status, headers and body; the web
//! UI's files and its session cookie.

mod api;
mod ui;
