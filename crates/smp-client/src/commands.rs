//! Shortcuts on [`Client`] for what people do most: read and change the image state,
//! reset, read the device's parameters and OS information. Each is one typed request
//! ([`Client::request`] sends any other).

use smp_proto::ImageHash;
use smp_transport::Transport;

use crate::messages::image::{ImageState, SetStateRequest, StateRequest};
use crate::messages::os::{InfoRequest, McumgrParamsResponse, ResetRequest};
use crate::{Client, ClientError};

impl<T: Transport + 'static> Client<T> {
    /// The state of the image in every slot (`image state`, read): version, hash and the
    /// active, confirmed, pending and permanent flags.
    ///
    /// ```no_run
    /// # async fn demo(client: smp_client::Client<smp_client::udp::UdpTransport>)
    /// # -> Result<(), smp_client::ClientError> {
    /// for image in client.image_state().await? {
    ///     let hash = image.hash.map(|h| h.to_string()).unwrap_or_default();
    ///     println!("slot {}: {} {hash} active={:?}", image.slot, image.version, image.active);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn image_state(&self) -> Result<Vec<ImageState>, ClientError> {
        Ok(self.request(&StateRequest).await?.images)
    }

    /// Marks the image with `hash` to be tested on the next boot: MCUboot swaps it in
    /// once, and swaps it out again at the boot after unless it is confirmed meanwhile.
    /// Returns the image state the device reports afterwards.
    pub async fn test_image(&self, hash: &ImageHash) -> Result<Vec<ImageState>, ClientError> {
        self.set_image_state(Some(hash), false).await
    }

    /// Confirms the image with `hash`, or the running image when `None`, so that it stays
    /// after reboots. Returns the image state the device reports afterwards.
    pub async fn confirm_image(
        &self,
        hash: Option<&ImageHash>,
    ) -> Result<Vec<ImageState>, ClientError> {
        self.set_image_state(hash, true).await
    }

    async fn set_image_state(
        &self,
        hash: Option<&ImageHash>,
        confirm: bool,
    ) -> Result<Vec<ImageState>, ClientError> {
        let request = SetStateRequest {
            hash: hash.cloned(),
            confirm,
        };
        Ok(self.request(&request).await?.images)
    }

    /// Resets the device. It answers before it restarts; requests sent meanwhile get no
    /// reply until it is back.
    pub async fn reset(&self) -> Result<(), ClientError> {
        self.request(&ResetRequest::default()).await?;
        Ok(())
    }

    /// The device's MCUmgr parameters (`buf_size`, `buf_count`), as the client last read
    /// them (when it started, unless [`ClientOptions::read_params`](crate::ClientOptions)
    /// was off, or with [`read_params`](Self::read_params)); `None` when the device does
    /// not offer them or they were never read. No request is sent.
    pub fn params(&self) -> Option<McumgrParamsResponse> {
        self.cached_params()
    }

    /// The device's OS and application information (`os info`), in the `uname`-like
    /// `format` (`"a"` for everything; `None` for the device's default, the kernel name).
    pub async fn os_info(&self, format: Option<&str>) -> Result<String, ClientError> {
        let request = InfoRequest {
            format: format.map(str::to_owned),
        };
        Ok(self.request(&request).await?.output)
    }
}
