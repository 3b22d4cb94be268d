//! Black-box tests: the real application over HTTP, a real SQLite file, real HTTP peers.

mod browser;
mod common;
mod smtp;

mod agent;
mod api;
mod channels;
mod cli;
mod concurrency;
mod dashboard;
mod detection;
mod edge_cases;
mod hosts;
mod ingest;
mod isolation;
mod keys;
mod notifications;
mod openapi;
mod policy;
mod process;
mod rebuild;
mod rotation;
mod schedules;
mod signin;
