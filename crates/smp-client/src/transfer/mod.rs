//! Chunked transfers: image upload, file upload and download.
//!
//! The planning is plain state with no IO, each in a module of its own that its tests sit
//! beside: [`upload_plan`] (how much data fits a frame, which chunks are in flight, what
//! the device's offset means for the next chunk, how many chunks may be in flight at
//! once) and [`download_plan`] (which offsets to ask for, the file the answers build).
//! The async drivers on [`Client`](crate::Client), [`upload`] and [`download`], send
//! what the plans say and report every answer back; [`slots`] holds an upload's requests
//! in flight. [`persistence`] decides whether a transfer outlives a request that ran out of
//! attempts. [`chunk`] is what an upload request carries, [`options`] the public
//! settings and summaries.

mod chunk;
mod download;
mod download_plan;
mod options;
mod persistence;
mod slots;
mod upload;
mod upload_plan;

pub use options::{
    FileTransferOptions, FileTransferSummary, ImageUploadOptions, Progress, UploadSummary,
};
